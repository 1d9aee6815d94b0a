package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

const appNS = "calls"

func relay(name string, mutate ...func(*v1alpha1.RelaySpec)) *v1alpha1.Relay {
	r := &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec:       v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "calling"}},
	}
	for _, m := range mutate {
		m(&r.Spec)
	}
	return r
}

func listeners(ls ...v1alpha1.RelayListener) func(*v1alpha1.RelaySpec) {
	return func(s *v1alpha1.RelaySpec) { s.Listeners = ls }
}

func exposure(t v1alpha1.RelayExposureType) func(*v1alpha1.RelaySpec) {
	return func(s *v1alpha1.RelaySpec) { s.Exposure.Type = t }
}

func dataPath(d v1alpha1.RelayDataPath) func(*v1alpha1.RelaySpec) {
	return func(s *v1alpha1.RelaySpec) { s.DataPath = d }
}

func tcp(name string, port int32) v1alpha1.RelayListener {
	return v1alpha1.RelayListener{Name: name, Protocol: corev1.ProtocolTCP, Port: port}
}

func udp(name string, port int32) v1alpha1.RelayListener {
	return v1alpha1.RelayListener{Name: name, Protocol: corev1.ProtocolUDP, Port: port}
}

func withNodePort(l v1alpha1.RelayListener, np int32) v1alpha1.RelayListener {
	l.NodePort = np
	return l
}

func rerr(field, msg string) *Error {
	return &Error{Kind: KindRelay, Namespace: appNS, Name: "r", Field: field, Message: msg}
}

func TestParseRelay(t *testing.T) {
	dual := corev1.IPFamilyPolicyPreferDualStack
	single := corev1.IPFamilyPolicySingleStack
	cases := []struct {
		name  string
		relay *v1alpha1.Relay
		want  []*Error
	}{
		{name: "defaults", relay: relay("r")},
		{name: "everything valid", relay: relay("r", listeners(
			withNodePort(tcp("sig", 5061), 30061), withNodePort(udp("media", 5061), 30061), udp("media2", 16384)),
			func(s *v1alpha1.RelaySpec) {
				s.Exposure = v1alpha1.RelayExposure{Type: v1alpha1.ExposeNodePort, IPFamilyPolicy: &dual,
					IPFamilies:         []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
					ServiceAnnotations: map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "198.51.100.210, 2001:db8:100::210", "external-dns.alpha.kubernetes.io/hostname": "calls.example"}}
				s.Backend.HealthCheckPort = 8080
				s.Timeouts = v1alpha1.RelayTimeouts{Connect: dur(5 * time.Minute), TCPIdle: dur(24 * time.Hour), UDPIdle: dur(time.Second), Drain: dur(time.Millisecond)}
				s.Limits = v1alpha1.RelayLimits{MaxFlows: 1, MaxDatagramSize: 512}
				s.Routing.Key = v1alpha1.RoutingKeyClientAddress
				s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"calls": "yes"}}
			})},
		{name: "UDP only without health check port", relay: relay("r", listeners(udp("media", 16384)))},
		{name: "host network with a long dotted name", relay: relay("relay.for.calls."+strings.Repeat("x", 47), exposure(v1alpha1.ExposeHostNetwork))},
		{name: "name longer than a label value", relay: relay("r"+strings.Repeat("x", 63), exposure(v1alpha1.ExposeHostNetwork)), want: []*Error{{
			Kind: KindRelay, Namespace: appNS, Name: "r" + strings.Repeat("x", 63), Field: "metadata.name",
			Message: "64 characters; at most 63, since relays label their Leases with the name",
		}}},
		{name: "empty name", relay: func() *v1alpha1.Relay { r := relay("r"); r.Name = ""; return r }(),
			want: []*Error{{Kind: KindRelay, Namespace: appNS, Field: "metadata.name", Message: "must not be empty"}}},
		{name: "service name too long", relay: relay("r" + strings.Repeat("x", 57)), want: []*Error{{
			Kind: KindRelay, Namespace: appNS, Name: "r" + strings.Repeat("x", 57), Field: "metadata.name",
			Message: `the owned Service "r` + strings.Repeat("x", 57) + `-relay" would not be a valid Service name: must be no more than 63 characters`,
		}}},
		{name: "duplicates", relay: relay("r", listeners(tcp("a", 8443), udp("a", 8443), tcp("b", 8443), udp("c", 8443))),
			want: []*Error{
				rerr("spec.listeners[1].name", `"a" is also spec.listeners[0]`),
				rerr("spec.listeners[2].port", `8443/TCP is also spec.listeners[0]`),
				rerr("spec.listeners[3].port", `8443/UDP is also spec.listeners[1]`),
			}},
		{name: "listener fields", relay: relay("r", listeners(
			v1alpha1.RelayListener{Name: "Bad_Name", Protocol: "SCTP", Port: 0, TargetPort: 70000},
			tcp(strings.Repeat("a", 16), 65536))),
			want: []*Error{
				rerr("spec.listeners[0].name", `"Bad_Name" is not a listener name: want 1 to 15 lower-case letters, digits and '-', starting and ending with a letter or digit`),
				rerr("spec.listeners[0].protocol", `"SCTP" is not TCP or UDP`),
				rerr("spec.listeners[0].port", "port 0 out of range; want 1 to 65535"),
				rerr("spec.listeners[0].targetPort", "port 70000 out of range; want 1 to 65535"),
				rerr("spec.listeners[1].name", `"aaaaaaaaaaaaaaaa" is not a listener name: want 1 to 15 lower-case letters, digits and '-', starting and ending with a letter or digit`),
				rerr("spec.listeners[1].port", "port 65536 out of range; want 1 to 65535"),
			}},
		{name: "too many listeners", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			for i := range 17 {
				s.Listeners = append(s.Listeners, tcp("l"+strings.Repeat("x", i%10)+string(rune('a'+i)), int32(1000+i)))
			}
		}), want: []*Error{rerr("spec.listeners", "17 listeners; at most 16")}},
		{name: "node port with load balancer", relay: relay("r", listeners(withNodePort(tcp("a", 1), 30000))),
			want: []*Error{rerr("spec.listeners[0].nodePort", "set only with exposure NodePort (exposure is LoadBalancer)")}},
		{name: "node ports", relay: relay("r", exposure(v1alpha1.ExposeNodePort), listeners(
			withNodePort(tcp("a", 1), 29999), withNodePort(tcp("b", 2), 32000), withNodePort(tcp("c", 3), 32000), withNodePort(tcp("d", 4), 32768))),
			want: []*Error{
				rerr("spec.listeners[0].nodePort", "node port 29999 out of range; want 30000 to 32767"),
				rerr("spec.listeners[2].nodePort", "node port 32000/TCP is also spec.listeners[1]"),
				rerr("spec.listeners[3].nodePort", "node port 32768 out of range; want 30000 to 32767"),
			}},
		{name: "node port with host network", relay: relay("r", exposure(v1alpha1.ExposeHostNetwork), listeners(withNodePort(udp("a", 1), 30000))),
			want: []*Error{rerr("spec.listeners[0].nodePort", "set only with exposure NodePort (exposure is HostNetwork)")}},
		{name: "backend", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Backend = v1alpha1.RelayBackend{ServiceName: "9calls", HealthCheckPort: -1}
		}), want: []*Error{
			rerr("spec.backend.serviceName", `"9calls" is not a Service name: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`),
			rerr("spec.backend.healthCheckPort", "port -1 out of range; want 1 to 65535"),
		}},
		{name: "unknown exposure", relay: relay("r", exposure("Ingress")),
			want: []*Error{rerr("spec.exposure.type", `"Ingress" is not LoadBalancer, NodePort or HostNetwork`)}},
		{name: "service fields with host network", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure = v1alpha1.RelayExposure{Type: v1alpha1.ExposeHostNetwork, IPFamilyPolicy: &single,
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, ServiceAnnotations: map[string]string{"a": "b"}}
		}), want: []*Error{
			rerr("spec.exposure.serviceAnnotations", "has no effect with exposure HostNetwork (no Service is created)"),
			rerr("spec.exposure.ipFamilyPolicy", "has no effect with exposure HostNetwork (no Service is created)"),
			rerr("spec.exposure.ipFamilies", "has no effect with exposure HostNetwork (no Service is created)"),
		}},
		{name: "families", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, "IPv5", corev1.IPv4Protocol, corev1.IPv6Protocol}
		}), want: []*Error{
			rerr("spec.exposure.ipFamilies[1]", `"IPv5" is not IPv4 or IPv6`),
			rerr("spec.exposure.ipFamilies[2]", "IPv4 is listed twice"),
			rerr("spec.exposure.ipFamilies[3]", "at most two families, one IPv4 and one IPv6"),
			rerr("spec.exposure.ipFamilyPolicy", "SingleStack (the default) allows one family; set PreferDualStack or RequireDualStack for 4"),
		}},
		{name: "dual stack without policy", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}), want: []*Error{rerr("spec.exposure.ipFamilyPolicy", "SingleStack (the default) allows one family; set PreferDualStack or RequireDualStack for 2")}},
		{name: "unknown policy", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			p := corev1.IPFamilyPolicy("AnyStack")
			s.Exposure.IPFamilyPolicy = &p
		}), want: []*Error{rerr("spec.exposure.ipFamilyPolicy", `"AnyStack" is not SingleStack, PreferDualStack or RequireDualStack`)}},
		{name: "annotations", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure.ServiceAnnotations = map[string]string{
				"bad key!":                                 "x",
				v1alpha1.AnnotationAllocatedFromPool:       "a",
				"pier.dev/adress-pool":                     "a",
				v1alpha1.AnnotationAddressPool:             " ",
				v1alpha1.AnnotationAllowSharedIP:           "calls",
				v1alpha1.AnnotationLoadBalancerIPs:         "198.51.100.210,2001:db8::1",
				"service.beta.kubernetes.io/anything-else": "kept",
			}
		}), want: []*Error{
			rerr("spec.exposure.serviceAnnotations[bad key!]", `"bad key!" is not an annotation key: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`),
			rerr("spec.exposure.serviceAnnotations[pier.dev/address-pool]", "must not be empty"),
			rerr("spec.exposure.serviceAnnotations[pier.dev/adress-pool]", "not a Pier annotation a Service may request; want one of pier.dev/address-pool, pier.dev/allow-shared-ip, pier.dev/loadBalancerIPs"),
			rerr("spec.exposure.serviceAnnotations[pier.dev/ip-allocated-from-pool]", "not a Pier annotation a Service may request; want one of pier.dev/address-pool, pier.dev/allow-shared-ip, pier.dev/loadBalancerIPs"),
			rerr("spec.exposure.serviceAnnotations[pier.dev/loadBalancerIPs]", `"198.51.100.210,2001:db8::1" names two families but the ipFamilyPolicy is SingleStack`),
		}},
		{name: "load balancer IPs", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure.ServiceAnnotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "198.51.100.210,198.51.100.211"}
		}), want: []*Error{rerr("spec.exposure.serviceAnnotations[pier.dev/loadBalancerIPs]", `"198.51.100.210,198.51.100.211": want one address, or one IPv4 and one IPv6`)}},
		{name: "load balancer IP with zone", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure.ServiceAnnotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "fe80::1%eth0"}
		}), want: []*Error{rerr("spec.exposure.serviceAnnotations[pier.dev/loadBalancerIPs]", `"fe80::1%eth0" is not an IP address`)}},
		{name: "annotations too large", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Exposure.ServiceAnnotations = map[string]string{"big": strings.Repeat("x", 256*1024)}
		}), want: []*Error{rerr("spec.exposure.serviceAnnotations", "annotations size 262147 is larger than limit 262144")}},
		{name: "timeouts", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Timeouts = v1alpha1.RelayTimeouts{Connect: dur(0), TCPIdle: dur(999 * time.Millisecond), UDPIdle: dur(61 * time.Minute), Drain: dur(-time.Second)}
		}), want: []*Error{
			rerr("spec.timeouts.connect", "0s: must be more than 0 (leave it unset for the default)"),
			rerr("spec.timeouts.tcpIdle", "999ms is shorter than 1s"),
			rerr("spec.timeouts.udpIdle", "1h1m0s is longer than 1h0m0s"),
			rerr("spec.timeouts.drain", "-1s: must be more than 0 (leave it unset for the default)"),
		}},
		{name: "connect too long", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Timeouts = v1alpha1.RelayTimeouts{Connect: dur(5*time.Minute + 1), TCPIdle: dur(25 * time.Hour), Drain: dur(2 * time.Hour)}
		}), want: []*Error{
			rerr("spec.timeouts.connect", "5m0.000000001s is longer than 5m0s"),
			rerr("spec.timeouts.tcpIdle", "25h0m0s is longer than 24h0m0s"),
			rerr("spec.timeouts.drain", "2h0m0s is longer than 1h0m0s"),
		}},
		{name: "limits, routing, selector", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Limits = v1alpha1.RelayLimits{MaxFlows: -1, MaxDatagramSize: 511}
			s.Routing.Key = "Random"
			s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "In"}}}
		}), want: []*Error{
			rerr("spec.nodeSelector", "invalid label selector: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"),
			rerr("spec.routing.key", `"Random" is not ClientAddressPort or ClientAddress`),
			rerr("spec.limits.maxFlows", "-1: must be at least 1 (0 or unset for the default)"),
			rerr("spec.limits.maxDatagramSize", "511 out of range; want 512 to 65535"),
		}},
		{name: "tcp connection limits", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Limits = v1alpha1.RelayLimits{MaxTCPConnections: 100, MaxTCPConnectionsPerSource: 100}
		})},
		{name: "tcp per-source limit alone", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Limits = v1alpha1.RelayLimits{MaxTCPConnectionsPerSource: 50_000}
		}), want: []*Error{
			rerr("spec.limits.maxTCPConnectionsPerSource", "50000 is more than maxTCPConnections (10000, the default)"),
		}},
		{name: "tcp connection limits out of range", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Limits = v1alpha1.RelayLimits{MaxTCPConnections: -1, MaxTCPConnectionsPerSource: -2}
		}), want: []*Error{
			rerr("spec.limits.maxTCPConnections", "-1: must be at least 1 (0 or unset for the default)"),
			rerr("spec.limits.maxTCPConnectionsPerSource", "-2: must be at least 1 (0 or unset for the default)"),
		}},
		{name: "tcp per-source limit above the listener's", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Limits = v1alpha1.RelayLimits{MaxTCPConnections: 10, MaxTCPConnectionsPerSource: 11}
		}), want: []*Error{
			rerr("spec.limits.maxTCPConnectionsPerSource", "11 is more than maxTCPConnections (10)"),
		}},
		{name: "token at the limits", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Routing.Token = &v1alpha1.RelayRoutingToken{Offset: 1024, Length: 63}
		})},
		{name: "token at offset 0, one byte", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Routing.Token = &v1alpha1.RelayRoutingToken{Length: 1}
		})},
		{name: "token out of range", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Routing.Token = &v1alpha1.RelayRoutingToken{Offset: 1025, Length: 64}
		}), want: []*Error{
			rerr("spec.routing.token.offset", "1025 out of range; want 0 to 1024"),
			rerr("spec.routing.token.length", "64 out of range; want 1 to 63"),
		}},
		{name: "token with negative offset and no length", relay: relay("r", func(s *v1alpha1.RelaySpec) {
			s.Routing.Token = &v1alpha1.RelayRoutingToken{Offset: -1}
		}), want: []*Error{
			rerr("spec.routing.token.offset", "-1 out of range; want 0 to 1024"),
			rerr("spec.routing.token.length", "0 out of range; want 1 to 63"),
		}},
		{name: "userspace with a token", relay: relay("r", dataPath(v1alpha1.DataPathUserspace), func(s *v1alpha1.RelaySpec) {
			s.Routing.Token = &v1alpha1.RelayRoutingToken{Offset: 4, Length: 16}
		})},
		{name: "kernel with a token", relay: relay("r", dataPath(v1alpha1.DataPathKernel), func(s *v1alpha1.RelaySpec) {
			s.Routing.Token = &v1alpha1.RelayRoutingToken{Offset: 4, Length: 16}
		}), want: []*Error{
			rerr("spec.dataPath", "Kernel cannot be combined with spec.routing.token: the kernel places a flow on its first packet without reading its payload"),
		}},
		{name: "kernel with the default listeners", relay: relay("r", dataPath(v1alpha1.DataPathKernel))},
		{name: "kernel, UDP only with a health check port", relay: relay("r", dataPath(v1alpha1.DataPathKernel), listeners(udp("media", 16384)),
			func(s *v1alpha1.RelaySpec) { s.Backend.HealthCheckPort = 8080 })},
		{name: "userspace with PROXY protocol", relay: relay("r", dataPath(v1alpha1.DataPathUserspace),
			func(s *v1alpha1.RelaySpec) { s.Backend.ProxyProtocol = true })},
		{name: "kernel with PROXY protocol", relay: relay("r", dataPath(v1alpha1.DataPathKernel),
			func(s *v1alpha1.RelaySpec) { s.Backend.ProxyProtocol = true }), want: []*Error{
			rerr("spec.dataPath", "Kernel cannot be combined with spec.backend.proxyProtocol: the kernel path adds no PROXY protocol header"),
		}},
		{name: "kernel, UDP only without a health check port", relay: relay("r", dataPath(v1alpha1.DataPathKernel), listeners(udp("media", 16384))), want: []*Error{
			rerr("spec.dataPath", "Kernel needs an active TCP check (a TCP listener or spec.backend.healthCheckPort): the kernel path cannot see a dead UDP server's ICMP port unreachable"),
		}},
		{name: "unknown data path", relay: relay("r", dataPath("eBPF"), func(s *v1alpha1.RelaySpec) { s.Backend.ProxyProtocol = true }), want: []*Error{
			rerr("spec.dataPath", `"eBPF" is not Userspace or Kernel`),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.relay.DeepCopy()
			cfg, got := ParseRelay(tc.relay)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRelay (-want +got):\n%s", diff)
			}
			if valid := len(cfg.Listeners) > 0; valid != (len(got) == 0) {
				t.Errorf("ParseRelay returned %d listeners with %d errors; want a configuration exactly when valid", len(cfg.Listeners), len(got))
			}
			if diff := cmp.Diff(before, tc.relay); diff != "" {
				t.Errorf("ParseRelay modified its input:\n%s", diff)
			}
			for _, e := range got {
				if !strings.HasPrefix(e.Error(), "Relay "+appNS+"/") {
					t.Errorf("error %q does not name the Relay", e)
				}
			}
		})
	}
}

func TestRelayServiceName(t *testing.T) {
	if got := RelayServiceName("calls"); got != "calls-relay" {
		t.Errorf("RelayServiceName = %q", got)
	}
	for exp, want := range map[v1alpha1.RelayExposureType]bool{
		"": true, v1alpha1.ExposeLoadBalancer: true, v1alpha1.ExposeNodePort: true, v1alpha1.ExposeHostNetwork: false,
	} {
		spec := v1alpha1.RelaySpec{Exposure: v1alpha1.RelayExposure{Type: exp}}
		if got := NeedsService(RelayExposure(&spec)); got != want {
			t.Errorf("NeedsService(%q) = %v, want %v", exp, got, want)
		}
	}
	for d, want := range map[v1alpha1.RelayDataPath]v1alpha1.RelayDataPath{
		"": v1alpha1.DataPathUserspace, v1alpha1.DataPathUserspace: v1alpha1.DataPathUserspace, v1alpha1.DataPathKernel: v1alpha1.DataPathKernel,
	} {
		if got := RelayDataPath(&v1alpha1.RelaySpec{DataPath: d}); got != want {
			t.Errorf("RelayDataPath(%q) = %q, want %q", d, got, want)
		}
	}
}

// FuzzParseRelay checks that ParseRelay never panics, is deterministic
// and names the Relay and a field in every error.
func FuzzParseRelay(f *testing.F) {
	f.Add("r", "calls", "TCP", int32(8443), int32(0), "LoadBalancer", "pier.dev/loadBalancerIPs", "198.51.100.1", "IPv4", int64(5e9))
	f.Add("", "", "SCTP", int32(-1), int32(40000), "NodePort", "bad key", "", "IPv9", int64(-1))
	f.Add(strings.Repeat("x", 70), "9x", "UDP", int32(70000), int32(30000), "HostNetwork", "pier.dev/x", "::1,::2", "", int64(1<<62))
	f.Fuzz(func(t *testing.T, name, svc, proto string, port, nodePort int32, exp, annKey, annVal, family string, d int64) {
		r := &v1alpha1.Relay{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name}}
		r.Spec.Backend.ServiceName = svc
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "l", Protocol: corev1.Protocol(proto), Port: port, NodePort: nodePort}, udp("u", port)}
		r.Spec.Exposure = v1alpha1.RelayExposure{Type: v1alpha1.RelayExposureType(exp), ServiceAnnotations: map[string]string{annKey: annVal},
			IPFamilies: []corev1.IPFamily{corev1.IPFamily(family)}}
		r.Spec.Timeouts.Connect = dur(time.Duration(d))
		cfg, errs := ParseRelay(r)
		cfg2, errs2 := ParseRelay(r)
		if diff := cmp.Diff(errs, errs2); diff != "" {
			t.Fatalf("not deterministic:\n%s", diff)
		}
		if diff := cmp.Diff(cfg, cfg2, cmpSelector, cmpAddr); diff != "" {
			t.Fatalf("configuration not deterministic:\n%s", diff)
		}
		if (len(errs) == 0) != (len(cfg.Listeners) > 0) {
			t.Fatalf("%d errors and %d listeners: want a configuration exactly when valid", len(errs), len(cfg.Listeners))
		}
		for _, e := range errs {
			if e.Kind != KindRelay || e.Field == "" || e.Message == "" || e.Name != name {
				t.Errorf("incomplete error: %#v", e)
			}
		}
	})
}

// TestParseRelayPierPorts: a listener on a port Pier's own daemons hold on
// every node (the relays and speakers use the host network) is refused; the
// same port of the other protocol is free.
func TestParseRelayPierPorts(t *testing.T) {
	cases := []struct {
		name     string
		listener v1alpha1.RelayListener
		want     []*Error
	}{
		{name: "gossip TCP", listener: tcp("l", 7946), want: []*Error{
			rerr("spec.listeners[0].port", "7946/TCP is the speakers' memberlist (gossip) port on every node"),
		}},
		{name: "gossip UDP", listener: udp("l", 7946), want: []*Error{
			rerr("spec.listeners[0].port", "7946/UDP is the speakers' memberlist (gossip) port on every node"),
		}},
		{name: "relay metrics", listener: tcp("l", 7474), want: []*Error{
			rerr("spec.listeners[0].port", "7474/TCP is pier-relay's metrics port on every node"),
		}},
		{name: "speaker metrics", listener: tcp("l", 7572), want: []*Error{
			rerr("spec.listeners[0].port", "7572/TCP is pier-speaker's metrics port on every node"),
		}},
		{name: "relay metrics port over UDP", listener: udp("l", 7474)},
		{name: "speaker metrics port over UDP", listener: udp("l", 7572)},
		{name: "next to gossip", listener: tcp("l", 7947)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := ParseRelay(relay("r", listeners(tc.listener)))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRelay (-want +got):\n%s", diff)
			}
		})
	}
}
