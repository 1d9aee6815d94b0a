package speaker

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/speaker/bgp"
)

func mustConfig(t *testing.T, advs ...v1alpha1.L2Advertisement) *config.Config {
	t.Helper()
	cfg, err := config.Parse(config.Objects{
		Pools: []v1alpha1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "l2", Namespace: "pier-system"},
				Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.200-198.51.100.250", "2001:db8:100::200/120"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: "pier-system"},
				Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.19.1.0/24"}}},
		},
		L2Advertisements: advs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func adv(name string, mutate func(*v1alpha1.L2AdvertisementSpec)) v1alpha1.L2Advertisement {
	a := v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "pier-system"}}
	if mutate != nil {
		mutate(&a.Spec)
	}
	return a
}

func node(name string, lbls map[string]string, conds ...corev1.NodeCondition) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Status: corev1.NodeStatus{Conditions: conds}}
}

func lbService(name string, addrs ...string) corev1.Service {
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	for _, a := range addrs {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a})
	}
	return svc
}

func slice(svc string, ready map[string]bool) discoveryv1.EndpointSlice {
	es := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{
		Name: svc + "-x", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	for n, r := range ready {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{NodeName: ptr.To(n), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(r)}})
	}
	return es
}

func TestTargets(t *testing.T) {
	nodes := []corev1.Node{
		node("node1", map[string]string{"zone": "a"}),
		node("node2", map[string]string{"zone": "b"}),
		node("node3", map[string]string{"zone": "a", LabelExcludeLB: ""}),
		node("node4", nil, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}),
	}
	any2 := map[string][]string{"node1": nil, "node2": nil}
	addr := netip.MustParseAddr("198.51.100.200")
	local := lbService("local", "198.51.100.200")
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	otherClass := lbService("other", "198.51.100.200")
	otherClass.Spec.LoadBalancerClass = ptr.To("example.com/x")
	tests := []struct {
		name   string
		advs   []v1alpha1.L2Advertisement
		svcs   []corev1.Service
		slices []discoveryv1.EndpointSlice
		want   []Target
	}{
		{"every eligible node, any interface", []v1alpha1.L2Advertisement{adv("all", nil)},
			[]corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: any2}}},
		{"dual-stack gives one target per address", []v1alpha1.L2Advertisement{adv("all", nil)},
			[]corev1.Service{lbService("web", "2001:db8:100::200", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: any2},
				{Addr: netip.MustParseAddr("2001:db8:100::200"), Service: "default/web", Nodes: any2}}},
		{"node selector and interfaces", []v1alpha1.L2Advertisement{adv("zone-a", func(s *v1alpha1.L2AdvertisementSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
			s.Interfaces = []string{"eth1"}
		})}, []corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node1": {"eth1"}}}}},
		{"two advertisements: interfaces unite, any wins", []v1alpha1.L2Advertisement{
			adv("a", func(s *v1alpha1.L2AdvertisementSpec) { s.Interfaces = []string{"eth2"} }),
			adv("b", func(s *v1alpha1.L2AdvertisementSpec) { s.Interfaces = []string{"eth1"} }),
			adv("c", func(s *v1alpha1.L2AdvertisementSpec) {
				s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "b"}}}
			}),
		}, []corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node1": {"eth1", "eth2"}, "node2": nil}}}},
		{"pool not advertised", []v1alpha1.L2Advertisement{adv("edge-only", func(s *v1alpha1.L2AdvertisementSpec) { s.IPAddressPools = []string{"edge"} })},
			[]corev1.Service{lbService("web", "198.51.100.200")}, nil, nil},
		{"address outside every pool", []v1alpha1.L2Advertisement{adv("all", nil)},
			[]corev1.Service{lbService("web", "203.0.113.9")}, nil, nil},
		{"service selector", []v1alpha1.L2Advertisement{adv("db", func(s *v1alpha1.L2AdvertisementSpec) {
			s.ServiceSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "db"}}}
		})}, []corev1.Service{lbService("web", "198.51.100.200")}, nil, nil},
		{"externalTrafficPolicy Local: nodes with a ready endpoint", []v1alpha1.L2Advertisement{adv("all", nil)},
			[]corev1.Service{local}, []discoveryv1.EndpointSlice{slice("local", map[string]bool{"node2": true, "node1": false})},
			[]Target{{Addr: addr, Service: "default/local", Nodes: map[string][]string{"node2": nil}}}},
		{"another class", []v1alpha1.L2Advertisement{adv("all", nil)}, []corev1.Service{otherClass}, nil, nil},
		{"externalTrafficPolicy Local, no ready endpoint: withheld", []v1alpha1.L2Advertisement{adv("all", nil)},
			[]corev1.Service{local}, []discoveryv1.EndpointSlice{slice("local", map[string]bool{"node2": false})},
			[]Target{{Addr: addr, Service: "default/local", Nodes: any2, Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints}}},
		{"externalTrafficPolicy Local, ready on an excluded node only: not withheld", []v1alpha1.L2Advertisement{adv("all", nil)},
			[]corev1.Service{local}, []discoveryv1.EndpointSlice{slice("local", map[string]bool{"node3": true})}, nil},
		{"a withheld address is not balanced", []v1alpha1.L2Advertisement{adv("all", func(s *v1alpha1.L2AdvertisementSpec) {
			s.Spread, s.RequireReadyEndpoints = v1alpha1.L2SpreadBalanced, true
		})},
			[]corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: any2, Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints}}},
		{"spread Balanced", []v1alpha1.L2Advertisement{adv("all", func(s *v1alpha1.L2AdvertisementSpec) { s.Spread = v1alpha1.L2SpreadBalanced })},
			[]corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: any2, Balanced: true}}},
		{"Balanced by one advertisement of two", []v1alpha1.L2Advertisement{
			adv("hash", func(s *v1alpha1.L2AdvertisementSpec) { s.Spread = v1alpha1.L2SpreadHash }),
			adv("zone-a", func(s *v1alpha1.L2AdvertisementSpec) {
				s.Spread = v1alpha1.L2SpreadBalanced
				s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
			}),
		}, []corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: any2, Balanced: true}}},
		{"a Balanced advertisement that allows no node", []v1alpha1.L2Advertisement{
			adv("all", nil),
			adv("none", func(s *v1alpha1.L2AdvertisementSpec) {
				s.Spread = v1alpha1.L2SpreadBalanced
				s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "c"}}}
			}),
		}, []corev1.Service{lbService("web", "198.51.100.200")}, nil,
			[]Target{{Addr: addr, Service: "default/web", Nodes: any2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Targets(Inputs{Config: mustConfig(t, tc.advs...), Services: tc.svcs, EndpointSlices: tc.slices, Nodes: nodes})
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Targets (-want +got):\n%s", diff)
			}
		})
	}
}

// An advertisement that requires ready endpoints announces a Service while
// any endpoint of it is ready, on any node or none, and not otherwise;
// the same from the slices as the cache keeps them (slimSlice).
func TestRequireReadyEndpoints(t *testing.T) {
	ep := func(node string, ready, terminating *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: ptr.To(true), Terminating: terminating}}
		if node != "" {
			e.NodeName = ptr.To(node)
		}
		return e
	}
	of := func(ns, svc string, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-" + ns, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, Endpoints: eps}
	}
	yes, no := ptr.To(true), ptr.To(false)
	tests := []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		want   bool
	}{
		{"no EndpointSlice", nil, false},
		{"no endpoints", []discoveryv1.EndpointSlice{of("default", "web")}, false},
		{"not ready", []discoveryv1.EndpointSlice{of("default", "web", ep("node1", no, nil), ep("node2", no, no))}, false},
		{"serving but terminating, ready unset", []discoveryv1.EndpointSlice{of("default", "web", ep("node1", nil, yes))}, false},
		{"serving but terminating, not ready", []discoveryv1.EndpointSlice{of("default", "web", ep("node1", no, yes))}, false},
		{"ready on another node", []discoveryv1.EndpointSlice{of("default", "web", ep("node1", no, nil), ep("node2", yes, no))}, true},
		{"ready unset counts as ready", []discoveryv1.EndpointSlice{of("default", "web", ep("node2", nil, nil))}, true},
		{"ready, naming no node", []discoveryv1.EndpointSlice{of("default", "web", ep("", yes, nil))}, true},
		{"ready in a second slice", []discoveryv1.EndpointSlice{of("default", "web", ep("node1", no, nil)),
			of("default", "web", ep("node3", yes, nil))}, true},
		{"ready endpoints of other Services only", []discoveryv1.EndpointSlice{of("default", "db", ep("node1", yes, nil)),
			of("other", "web", ep("node1", yes, nil))}, false},
	}
	nodes := []corev1.Node{node("node1", nil), node("node2", nil)}
	svc := lbService("web", "198.51.100.200", "203.0.113.10")
	l2cfg := mustConfig(t,
		adv("ready", func(s *v1alpha1.L2AdvertisementSpec) { s.RequireReadyEndpoints, s.Interfaces = true, []string{"eth1"} }),
		adv("edge", func(s *v1alpha1.L2AdvertisementSpec) {
			s.IPAddressPools, s.Interfaces = []string{"edge"}, []string{"eth2"}
		}))
	bgpcfg := bgpConfig(t, v1alpha1.BGPAdvertisementSpec{RequireReadyEndpoints: true})
	l2Want := []Target{{Addr: netip.MustParseAddr("198.51.100.200"), Service: "default/web",
		Nodes: map[string][]string{"node1": {"eth1"}, "node2": {"eth1"}}}}
	bgpWant := []bgp.Path{{Prefix: netip.MustParsePrefix("203.0.113.10/32"), Peers: []string{"r1"}}}
	for _, tc := range tests {
		var slim []discoveryv1.EndpointSlice
		for _, es := range tc.slices {
			es = *es.DeepCopy()
			slimSlice(&es)
			slim = append(slim, es)
		}
		for _, view := range []struct {
			name   string
			slices []discoveryv1.EndpointSlice
		}{{"full", tc.slices}, {"slim", slim}} {
			t.Run(tc.name+"/"+view.name, func(t *testing.T) {
				// Not announced, but reported by the node that would.
				wantL2 := []Target{l2Want[0]}
				wantL2[0].Withheld = v1alpha1.NotAnnouncedNoReadyEndpoints
				var wantBGP []bgp.Path
				if tc.want {
					wantL2, wantBGP = l2Want, bgpWant
				}
				in := Inputs{Config: l2cfg, Services: []corev1.Service{svc}, EndpointSlices: view.slices, Nodes: nodes}
				if diff := cmp.Diff(wantL2, Targets(in), addrCmp, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Targets (-want +got):\n%s", diff)
				}
				in.Config = bgpcfg
				got := BGPPlan(in, "node1", map[string]string{"pier-bgp-passwords/md5/password": "s3cret"})
				if diff := cmp.Diff(wantBGP, got.Paths, addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("BGP paths (-want +got):\n%s", diff)
				}
				wantWithheld := v1alpha1.NotAnnouncedNoReadyEndpoints
				if tc.want {
					wantWithheld = ""
				}
				if len(got.Sources) != 1 || got.Sources[0].Withheld != wantWithheld || (len(got.Addrs) == 0) != !tc.want {
					t.Errorf("BGP sources %+v, addresses %v: want one, withheld %q", got.Sources, got.Addrs, wantWithheld)
				}
			})
		}
	}
}

// The option is the advertisement's: another advertisement of the same
// pool without it goes on announcing the Service, and externalTrafficPolicy
// Local still limits the nodes to those with a ready endpoint.
func TestRequireReadyEndpointsPerAdvertisement(t *testing.T) {
	nodes := []corev1.Node{node("node1", nil), node("node2", nil)}
	addr := netip.MustParseAddr("198.51.100.200")
	cfg := mustConfig(t,
		adv("ready", func(s *v1alpha1.L2AdvertisementSpec) { s.RequireReadyEndpoints, s.Interfaces = true, []string{"eth1"} }),
		adv("always", func(s *v1alpha1.L2AdvertisementSpec) { s.Interfaces = []string{"eth2"} }))
	local := localService("web", "198.51.100.200")
	tests := []struct {
		name   string
		svc    corev1.Service
		slices []discoveryv1.EndpointSlice
		want   []Target
	}{
		{"none ready: only the other advertisement", lbService("web", "198.51.100.200"),
			[]discoveryv1.EndpointSlice{slice("web", map[string]bool{"node1": false})},
			[]Target{{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node1": {"eth2"}, "node2": {"eth2"}}}}},
		{"one ready: both", lbService("web", "198.51.100.200"),
			[]discoveryv1.EndpointSlice{slice("web", map[string]bool{"node1": true})},
			[]Target{{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node1": {"eth1", "eth2"}, "node2": {"eth1", "eth2"}}}}},
		{"Local, ready on node2: node2 only", local,
			[]discoveryv1.EndpointSlice{slice("web", map[string]bool{"node1": false, "node2": true})},
			[]Target{{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node2": {"eth1", "eth2"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Targets(Inputs{Config: cfg, Services: []corev1.Service{tc.svc}, EndpointSlices: tc.slices, Nodes: nodes})
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("Targets (-want +got):\n%s", diff)
			}
		})
	}
}
