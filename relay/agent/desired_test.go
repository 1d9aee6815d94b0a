package agent

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/relay"
)

var (
	any6    = netip.IPv6Unspecified()
	cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	cmpAP   = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
)

func calls(ns, name string, mod ...func(*v1alpha1.Relay)) v1alpha1.Relay {
	r := v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "media"}},
	}
	for _, m := range mod {
		m(&r)
	}
	return r
}

type ep struct {
	addr, hostname, target string
	ready, terminating     *bool
}

func slice(ns, svc string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...ep) discoveryv1.EndpointSlice {
	es := discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + string(family), Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: family,
		Ports:       ports,
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Terminating: e.terminating}}
		if e.hostname != "" {
			x.Hostname = ptr.To(e.hostname)
		}
		if e.target != "" {
			x.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: e.target}
		}
		es.Endpoints = append(es.Endpoints, x)
	}
	return es
}

func weighted(es discoveryv1.EndpointSlice, w string) discoveryv1.EndpointSlice {
	es.Name += "-" + w
	es.Labels[v1alpha1.LabelEndpointWeight] = w
	return es
}

func port(name string, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p)}
}

func TestBackends(t *testing.T) {
	defaultPorts := map[string]uint16{"calls-tcp": 8443, "calls-udp": 16384}
	for _, tc := range []struct {
		name  string
		relay v1alpha1.Relay
		eps   []discoveryv1.EndpointSlice
		want  []relay.Backend
	}{{
		name:  "names: hostname, else target, else address; sorted",
		relay: calls("voice", "r"),
		eps: []discoveryv1.EndpointSlice{slice("voice", "media", discoveryv1.AddressTypeIPv4, nil,
			ep{addr: "198.18.1.3"}, ep{addr: "198.18.1.2", target: "media-0"}, ep{addr: "198.18.1.1", hostname: "srv1", target: "media-1"})},
		want: []relay.Backend{
			{Name: "198.18.1.3", Addr: netip.MustParseAddr("198.18.1.3"), Ports: defaultPorts},
			{Name: "media-0", Addr: netip.MustParseAddr("198.18.1.2"), Ports: defaultPorts},
			{Name: "srv1", Addr: netip.MustParseAddr("198.18.1.1"), Ports: defaultPorts},
		},
	}, {
		name:  "ready only; terminating is not ready; other services and namespaces ignored",
		relay: calls("voice", "r"),
		eps: []discoveryv1.EndpointSlice{
			slice("voice", "media", discoveryv1.AddressTypeIPv4, nil,
				ep{addr: "198.18.1.1", ready: ptr.To(true)}, ep{addr: "198.18.1.2", ready: ptr.To(false)},
				ep{addr: "198.18.1.3", ready: ptr.To(true), terminating: ptr.To(true)}),
			slice("voice", "other", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.18.1.4"}),
			slice("video", "media", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.18.1.5"}),
			slice("voice", "media", discoveryv1.AddressTypeFQDN, nil, ep{addr: "srv.example"}),
		},
		want: []relay.Backend{{Name: "198.18.1.1", Addr: netip.MustParseAddr("198.18.1.1"), Ports: defaultPorts}},
	}, {
		name: "ports: named slice port, else target port, else port; PROXY and health port from the spec",
		relay: calls("voice", "r", func(r *v1alpha1.Relay) {
			r.Spec.Listeners = []v1alpha1.RelayListener{
				{Name: "sig", Protocol: corev1.ProtocolTCP, Port: 5061},
				{Name: "media", Protocol: corev1.ProtocolUDP, Port: 3478, TargetPort: 13478},
				{Name: "plain", Protocol: corev1.ProtocolUDP, Port: 3479},
			}
			r.Spec.Backend.ProxyProtocol, r.Spec.Backend.HealthCheckPort = true, 8080
		}),
		eps: []discoveryv1.EndpointSlice{slice("voice", "media", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{port("sig", 15061), port("other", 1)}, ep{addr: "198.18.1.1", hostname: "a"})},
		want: []relay.Backend{{
			Name: "a", Addr: netip.MustParseAddr("198.18.1.1"), ProxyProtocol: true, HealthPort: 8080,
			Ports: map[string]uint16{"sig": 15061, "media": 13478, "plain": 3479},
		}},
	}, {
		name:  "dual-stack Service: one backend per server, its IPv4 address",
		relay: calls("voice", "r"),
		eps: []discoveryv1.EndpointSlice{
			slice("voice", "media", discoveryv1.AddressTypeIPv6, nil, ep{addr: "2001:db8:1::1", target: "media-0"}, ep{addr: "2001:db8:1::2", target: "media-1"}),
			slice("voice", "media", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.18.1.1", target: "media-0"}),
		},
		want: []relay.Backend{
			{Name: "media-0", Addr: netip.MustParseAddr("198.18.1.1"), Ports: defaultPorts},
			{Name: "media-1", Addr: netip.MustParseAddr("2001:db8:1::2"), Ports: defaultPorts},
		},
	}, {
		name: "weighted slices: their listeners only, ports and weights merged per endpoint",
		relay: calls("voice", "r", func(r *v1alpha1.Relay) {
			r.Spec.Listeners = []v1alpha1.RelayListener{
				{Name: "sig", Protocol: corev1.ProtocolTCP, Port: 8443},
				{Name: "media", Protocol: corev1.ProtocolUDP, Port: 16384},
			}
		}),
		eps: []discoveryv1.EndpointSlice{
			weighted(slice("voice", "media", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("sig", 18443)},
				ep{addr: "198.18.1.1"}, ep{addr: "198.18.1.2"}), "3"),
			weighted(slice("voice", "media", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("media", 26384)},
				ep{addr: "198.18.1.1"}, ep{addr: "198.18.1.3"}), "0"),
			weighted(slice("voice", "media", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("media", 1)},
				ep{addr: "198.18.1.4"}), "not-a-number"),
		},
		want: []relay.Backend{
			{Name: "198.18.1.1", Addr: netip.MustParseAddr("198.18.1.1"),
				Ports: map[string]uint16{"sig": 18443, "media": 26384}, Weights: map[string]uint32{"sig": 3, "media": 0}},
			{Name: "198.18.1.2", Addr: netip.MustParseAddr("198.18.1.2"),
				Ports: map[string]uint16{"sig": 18443}, Weights: map[string]uint32{"sig": 3}},
			{Name: "198.18.1.3", Addr: netip.MustParseAddr("198.18.1.3"),
				Ports: map[string]uint16{"media": 26384}, Weights: map[string]uint32{"media": 0}},
		},
	}, {
		name:  "bad addresses are skipped",
		relay: calls("voice", "r"),
		eps:   []discoveryv1.EndpointSlice{slice("voice", "media", discoveryv1.AddressTypeIPv4, nil, ep{addr: "not-an-ip"})},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Backends(&tc.relay, tc.eps)
			if diff := cmp.Diff(tc.want, got, cmpAddr, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("backends (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"pier.dev/calls": "yes"}}}
	selector := func(v string) func(*v1alpha1.Relay) {
		return func(r *v1alpha1.Relay) {
			r.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pier.dev/calls": v}}
		}
	}
	deleting := func(r *v1alpha1.Relay) { r.DeletionTimestamp = ptr.To(metav1.Now()) }
	badSelector := func(r *v1alpha1.Relay) {
		r.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}
	}
	defaults := Config{Listeners: []relay.Listener{
		{Name: "calls-tcp", Protocol: relay.TCP, Addr: netip.AddrPortFrom(any6, 8443)},
		{Name: "calls-udp", Protocol: relay.UDP, Addr: netip.AddrPortFrom(any6, 16384)},
	}}
	for _, tc := range []struct {
		name    string
		relays  []v1alpha1.Relay
		node    *corev1.Node
		want    []Key
		errored int
	}{
		{name: "no selector: every node", relays: []v1alpha1.Relay{calls("a", "r")}, node: node, want: []Key{{Namespace: "a", Name: "r"}}},
		{name: "no selector, unknown node", relays: []v1alpha1.Relay{calls("a", "r")}, want: []Key{{Namespace: "a", Name: "r"}}},
		{name: "selector matches", relays: []v1alpha1.Relay{calls("a", "r", selector("yes"))}, node: node, want: []Key{{Namespace: "a", Name: "r"}}},
		{name: "selector does not match", relays: []v1alpha1.Relay{calls("a", "r", selector("no"))}, node: node},
		{name: "selector, unknown node", relays: []v1alpha1.Relay{calls("a", "r", selector("yes"))}},
		{name: "being deleted", relays: []v1alpha1.Relay{calls("a", "r", deleting)}, node: node},
		{name: "bad selector is skipped and named", relays: []v1alpha1.Relay{calls("a", "r", badSelector), calls("b", "r")}, node: node,
			want: []Key{{Namespace: "b", Name: "r"}}, errored: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, refused := Desired(Inputs{Relays: tc.relays, Node: tc.node, Bind: any6})
			var keys []Key
			for k, w := range got {
				keys = append(keys, k)
				if diff := cmp.Diff(defaults, w.Config, cmpAP); diff != "" {
					t.Errorf("%s config (-want +got):\n%s", k, diff)
				}
			}
			if diff := cmp.Diff(tc.want, keys, cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b Key) bool { return a.String() < b.String() })); diff != "" {
				t.Errorf("served (-want +got):\n%s", diff)
			}
			if len(refused) != tc.errored {
				t.Errorf("refused %v, want %d", refused, tc.errored)
			}
		})
	}
}

// TestConfigOf: a Relay's relay config is config.ParseRelay's, with
// its listeners on the bind address.
func TestConfigOf(t *testing.T) {
	udp := []v1alpha1.RelayListener{{Name: "m", Protocol: corev1.ProtocolUDP, Port: 3478}}
	udpWant := []relay.Listener{{Name: "m", Protocol: relay.UDP, Addr: netip.MustParseAddrPort("0.0.0.0:3478")}}
	cases := []struct {
		name string
		spec v1alpha1.RelaySpec
		want Config
	}{
		{name: "everything set", spec: v1alpha1.RelaySpec{
			Listeners: udp,
			Routing:   v1alpha1.RelayRouting{Key: v1alpha1.RoutingKeyClientAddress},
			Timeouts: v1alpha1.RelayTimeouts{
				Connect: &metav1.Duration{Duration: time.Second}, TCPIdle: &metav1.Duration{Duration: time.Minute},
				UDPIdle: &metav1.Duration{Duration: 20 * time.Second}, Drain: &metav1.Duration{Duration: 3 * time.Second},
			},
			Limits: v1alpha1.RelayLimits{MaxFlows: 1000, MaxDatagramSize: 1500, MaxTCPConnections: 500, MaxTCPConnectionsPerSource: 50},
		}, want: Config{Listeners: udpWant, RelaySettings: config.RelaySettings{
			KeyByAddressOnly: true, MaxFlows: 1000, MaxDatagramSize: 1500,
			MaxTCPConns: 500, MaxTCPConnsPerSource: 50,
			ConnectTimeout: time.Second, TCPIdleTimeout: time.Minute, UDPIdleTimeout: 20 * time.Second, DrainTimeout: 3 * time.Second,
		}}},
		{name: "kernel data path", spec: v1alpha1.RelaySpec{Listeners: udp, DataPath: v1alpha1.DataPathKernel,
			Backend: v1alpha1.RelayBackend{HealthCheckPort: 8080}},
			want: Config{Listeners: udpWant, RelaySettings: config.RelaySettings{Kernel: true}}},
		{name: "userspace data path", spec: v1alpha1.RelaySpec{Listeners: udp, DataPath: v1alpha1.DataPathUserspace},
			want: Config{Listeners: udpWant}},
		{name: "routing token", spec: v1alpha1.RelaySpec{Listeners: udp,
			Routing: v1alpha1.RelayRouting{Token: &v1alpha1.RelayRoutingToken{Offset: 4, Length: 16}}},
			want: Config{Listeners: udpWant, Token: relay.TokenOptions{Offset: 4, Length: 16}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := calls("a", "r", func(r *v1alpha1.Relay) { tc.spec.Backend.ServiceName = "media"; r.Spec = tc.spec })
			c, errs := config.ParseRelay(&r)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			got := ConfigOf(c, netip.IPv4Unspecified())
			if diff := cmp.Diff(tc.want, got, cmpAP); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if !got.Equal(tc.want) {
				t.Error("Equal: a config differs from its copy")
			}
			o := got.RelayOptions(nil)
			if o.Kernel.Enabled != tc.want.Kernel {
				t.Errorf("relay options: kernel data path %+v, want enabled %v", o.Kernel, tc.want.Kernel)
			}
			if diff := cmp.Diff(tc.want.Token, o.Token); diff != "" {
				t.Errorf("relay options: token (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigFields: Config.Equal compares these fields, the settings
// whole; a field added to Config must be added to Equal (and here).
func TestConfigFields(t *testing.T) {
	var got []string
	for f := range reflect.TypeFor[Config]().Fields() {
		got = append(got, f.Name)
	}
	if diff := cmp.Diff([]string{"Listeners", "RelaySettings", "Token"}, got); diff != "" {
		t.Errorf("Config fields (-compared by Equal +declared):\n%s", diff)
	}
	if !reflect.TypeFor[config.RelaySettings]().Comparable() {
		t.Error("config.RelaySettings is not comparable")
	}
}

func TestConfigEqual(t *testing.T) {
	base := Config{
		Listeners:     []relay.Listener{{Name: "m", Protocol: relay.UDP, Addr: netip.MustParseAddrPort("0.0.0.0:3478")}},
		RelaySettings: config.RelaySettings{UDPIdleTimeout: time.Minute, DrainTimeout: 3 * time.Second},
	}
	cases := []struct {
		name   string
		change func(*Config)
	}{
		{name: "drain timeout", change: func(c *Config) { c.DrainTimeout = time.Second }},
		{name: "listener port", change: func(c *Config) {
			c.Listeners = []relay.Listener{{Name: "m", Protocol: relay.UDP, Addr: netip.MustParseAddrPort("0.0.0.0:3479")}}
		}},
		{name: "data path", change: func(c *Config) { c.Kernel = true }},
		{name: "token", change: func(c *Config) { c.Token = relay.TokenOptions{Offset: 4, Length: 16} }},
		{name: "token offset", change: func(c *Config) { c.Token.Offset = 1 }},
		{name: "tcp connection limit", change: func(c *Config) { c.MaxTCPConns = 10 }},
		{name: "tcp per-source limit", change: func(c *Config) { c.MaxTCPConnsPerSource = 10 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other := base
			tc.change(&other)
			if base.Equal(other) || other.Equal(base) {
				t.Errorf("Equal: configs with a different %s are equal", tc.name)
			}
		})
	}
}

func TestDesiredVIPs(t *testing.T) {
	r := calls("a", "r")
	r.Status.Addresses = []string{"2001:db8:100::200", "not-an-address", "198.51.100.200"}
	got, _, _ := Desired(Inputs{Relays: []v1alpha1.Relay{r}, Bind: any6})
	want := []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")}
	if diff := cmp.Diff(want, got[Key{Namespace: "a", Name: "r"}].VIPs, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
}

// TestTCPLimitDefaults: config validates against the defaults the relay
// applies.
func TestTCPLimitDefaults(t *testing.T) {
	if config.DefaultRelayMaxTCPConnections != relay.DefaultMaxTCPConns ||
		config.DefaultRelayMaxTCPConnectionsPerSource != relay.DefaultMaxTCPConnsPerSource {
		t.Errorf("config's TCP limit defaults %d/%d differ from the relay's %d/%d",
			config.DefaultRelayMaxTCPConnections, config.DefaultRelayMaxTCPConnectionsPerSource,
			relay.DefaultMaxTCPConns, relay.DefaultMaxTCPConnsPerSource)
	}
}

// TestTokenLimits: config accepts no token the relay refuses.
func TestTokenLimits(t *testing.T) {
	if config.MaxTokenOffset > relay.MaxTokenOffset || config.MaxTokenLength > relay.MaxTokenLength {
		t.Errorf("config's token limits offset %d, length %d exceed the relay's %d, %d",
			config.MaxTokenOffset, config.MaxTokenLength, relay.MaxTokenOffset, relay.MaxTokenLength)
	}
}
