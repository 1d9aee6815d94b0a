package config

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// cmpSelector compares label selectors by their string form.
var cmpSelector = cmp.Comparer(func(a, b labels.Selector) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
})

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestParseRelayConfig: a valid Relay's configuration, defaults applied.
func TestParseRelayConfig(t *testing.T) {
	defaults := []RelayListener{
		{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: 8443},
		{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: 16384},
	}
	cases := []struct {
		name  string
		relay *v1alpha1.Relay
		want  Relay
	}{
		{name: "defaults", relay: relay("r"), want: Relay{
			Listeners: defaults, Backend: RelayBackend{ServiceName: "calling"},
			Exposure: v1alpha1.ExposeLoadBalancer, NodeSelector: labels.Everything(),
		}},
		{name: "everything set", relay: relay("r", exposure(v1alpha1.ExposeNodePort),
			listeners(withNodePort(v1alpha1.RelayListener{Name: "m", Protocol: corev1.ProtocolUDP, Port: 3478, TargetPort: 3479}, 30478)),
			func(s *v1alpha1.RelaySpec) {
				s.Backend.ProxyProtocol, s.Backend.HealthCheckPort = true, 8080
				s.Routing = v1alpha1.RelayRouting{Key: v1alpha1.RoutingKeyClientAddress, Token: &v1alpha1.RelayRoutingToken{Offset: 4, Length: 16}}
				s.Timeouts = v1alpha1.RelayTimeouts{Connect: dur(time.Second), TCPIdle: dur(time.Minute), UDPIdle: dur(20 * time.Second), Drain: dur(3 * time.Second)}
				s.Limits = v1alpha1.RelayLimits{MaxFlows: 1000, MaxDatagramSize: 1500, MaxTCPConnections: 500, MaxTCPConnectionsPerSource: 50}
				s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pier.dev/relay": "yes"}}
			}), want: Relay{
			Listeners: []RelayListener{{Name: "m", Protocol: corev1.ProtocolUDP, Port: 3478, TargetPort: 3479, NodePort: 30478}},
			Backend:   RelayBackend{ServiceName: "calling", ProxyProtocol: true, HealthCheckPort: 8080},
			Settings: RelaySettings{
				KeyByAddressOnly: true, MaxFlows: 1000, MaxDatagramSize: 1500, MaxTCPConns: 500, MaxTCPConnsPerSource: 50,
				ConnectTimeout: time.Second, TCPIdleTimeout: time.Minute, UDPIdleTimeout: 20 * time.Second, DrainTimeout: 3 * time.Second,
			},
			Token:        RelayToken{Offset: 4, Length: 16},
			Exposure:     v1alpha1.ExposeNodePort,
			NodeSelector: labels.SelectorFromSet(labels.Set{"pier.dev/relay": "yes"}),
		}},
		{name: "kernel data path", relay: relay("r", dataPath(v1alpha1.DataPathKernel), exposure(v1alpha1.ExposeHostNetwork)), want: Relay{
			Listeners: defaults, Backend: RelayBackend{ServiceName: "calling"}, Settings: RelaySettings{Kernel: true},
			Exposure: v1alpha1.ExposeHostNetwork, NodeSelector: labels.Everything(),
		}},
		{name: "userspace data path", relay: relay("r", dataPath(v1alpha1.DataPathUserspace)), want: Relay{
			Listeners: defaults, Backend: RelayBackend{ServiceName: "calling"},
			Exposure: v1alpha1.ExposeLoadBalancer, NodeSelector: labels.Everything(),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := ParseRelay(tc.relay)
			if len(errs) > 0 {
				t.Fatalf("ParseRelay: %v", errs)
			}
			if diff := cmp.Diff(tc.want, got, cmpSelector, cmpAddr); diff != "" {
				t.Errorf("ParseRelay (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStandaloneRelay: standalone pier-relay's flags are checked with the
// Relay rules, the errors naming the flags.
func TestStandaloneRelay(t *testing.T) {
	udpL := RelayListener{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 16384}
	tcpL := RelayListener{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Addr: netip.MustParseAddr("::"), Port: 8443}
	flags := func(mod ...func(*Relay)) Relay {
		r := Relay{Listeners: []RelayListener{udpL, tcpL}, Settings: RelaySettings{
			MaxFlows: 100_000, MaxTCPConns: 10_000, MaxTCPConnsPerSource: 1000, UDPIdleTimeout: time.Minute, DrainTimeout: 30 * time.Second,
		}}
		for _, m := range mod {
			m(&r)
		}
		return r
	}
	ferr := func(field, msg string) *Error {
		return &Error{Kind: KindStandaloneRelay, Name: "flags", Field: field, Message: msg}
	}
	cases := []struct {
		name    string
		flags   Relay
		want    Relay
		wantErr []*Error
	}{
		{name: "defaults", flags: flags(), want: flags(func(r *Relay) {
			r.Exposure, r.NodeSelector = v1alpha1.ExposeHostNetwork, labels.Everything()
		})},
		{name: "kernel, token and PROXY protocol", flags: flags(func(r *Relay) {
			r.Settings.Kernel, r.Token, r.Backend.ProxyProtocol = true, RelayToken{Offset: 4, Length: 16}, true
		}), wantErr: []*Error{
			ferr("--kernel", "Kernel cannot be combined with --proxy-protocol: the kernel path adds no PROXY protocol header"),
			ferr("--kernel", "Kernel cannot be combined with --token: the kernel places a flow on its first packet without reading its payload"),
		}},
		{name: "kernel, UDP only", flags: flags(func(r *Relay) { r.Listeners, r.Settings.Kernel = []RelayListener{udpL}, true }), wantErr: []*Error{
			ferr("--kernel", "Kernel needs an active TCP check (a TCP listener or --health-port): "+
				"the kernel path cannot see a dead UDP server's ICMP port unreachable"),
		}},
		{name: "kernel, UDP only, health port", flags: flags(func(r *Relay) {
			r.Listeners, r.Settings.Kernel, r.Backend.HealthCheckPort = []RelayListener{udpL}, true, 9000
		}), want: flags(func(r *Relay) {
			r.Listeners, r.Settings.Kernel, r.Backend.HealthCheckPort = []RelayListener{udpL}, true, 9000
			r.Exposure, r.NodeSelector = v1alpha1.ExposeHostNetwork, labels.Everything()
		})},
		{name: "limits and timeouts", flags: flags(func(r *Relay) {
			r.Settings.MaxTCPConnsPerSource, r.Settings.UDPIdleTimeout, r.Settings.DrainTimeout = 20_000, 2*time.Hour, -time.Second
			r.Settings.MaxFlows = math.MaxInt32 + 1
		}), wantErr: []*Error{
			ferr("--max-flows", "2147483648 out of range"),
		}},
		{name: "limits and timeouts in range of the spec", flags: flags(func(r *Relay) {
			r.Settings.MaxTCPConnsPerSource, r.Settings.UDPIdleTimeout, r.Settings.DrainTimeout = 20_000, 2*time.Hour, -time.Second
		}), wantErr: []*Error{
			ferr("--udp-idle", "2h0m0s is longer than 1h0m0s"),
			ferr("--drain", "-1s: must be more than 0 (leave it unset for the default)"),
			ferr("--max-tcp-conns-per-source", "20000 is more than maxTCPConnections (10000)"),
		}},
		{name: "token out of range", flags: flags(func(r *Relay) { r.Token = RelayToken{Offset: 2000, Length: 64} }), wantErr: []*Error{
			ferr("--token offset", "2000 out of range; want 0 to 1024"),
			ferr("--token length", "64 out of range; want 1 to 63"),
		}},
		{name: "duplicate and bad listeners", flags: flags(func(r *Relay) {
			r.Listeners = []RelayListener{udpL, udpL, {Name: "Calls_TCP", Protocol: corev1.ProtocolTCP, Addr: netip.MustParseAddr("::"), Port: 8443}}
		}), wantErr: []*Error{
			ferr("--listen[1].name", `"calls-udp" is also --listen[0]`),
			ferr("--listen[1].port", "16384/UDP is also --listen[0]"),
			ferr("--listen[2].name", `"Calls_TCP" is not a listener name: want 1 to 15 lower-case letters, digits and '-', starting and ending with a letter or digit`),
		}},
		{name: "no listeners", flags: Relay{}, wantErr: []*Error{ferr("--listen", "none; want at least one")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := StandaloneRelay(tc.flags)
			if diff := cmp.Diff(tc.wantErr, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got, cmpSelector, cmpAddr); diff != "" {
				t.Errorf("configuration (-want +got):\n%s", diff)
			}
		})
	}
}
