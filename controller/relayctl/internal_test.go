package relayctl

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestReadyEndpoints(t *testing.T) {
	ep := func(ready *bool, ref, host string, addrs ...string) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
		if ref != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "calls", Name: ref}
		}
		if host != "" {
			e.Hostname = ptr.To(host)
		}
		return e
	}
	yes, no := ptr.To(true), ptr.To(false)
	cases := []struct {
		name   string
		slices [][]discoveryv1.Endpoint
		want   int
	}{
		{name: "none", want: 0},
		{name: "ready and not", slices: [][]discoveryv1.Endpoint{{ep(yes, "a", "", "198.51.100.1"), ep(no, "b", "", "198.51.100.2")}}, want: 1},
		{name: "unknown readiness counts", slices: [][]discoveryv1.Endpoint{{ep(nil, "a", "", "198.51.100.1")}}, want: 1},
		{name: "same pod in both families", slices: [][]discoveryv1.Endpoint{
			{ep(yes, "a", "", "198.51.100.1"), ep(yes, "b", "", "198.51.100.2")},
			{ep(yes, "a", "", "2001:db8::1"), ep(yes, "b", "", "2001:db8::2")},
		}, want: 2},
		{name: "by hostname without target", slices: [][]discoveryv1.Endpoint{
			{ep(yes, "", "srv1", "198.51.100.1")}, {ep(yes, "", "srv1", "2001:db8::1"), ep(yes, "", "srv2", "2001:db8::2")},
		}, want: 2},
		{name: "by address without target or hostname", slices: [][]discoveryv1.Endpoint{
			{ep(yes, "", "", "198.51.100.1"), ep(yes, "", "", "198.51.100.1"), ep(yes, "", "", "198.51.100.2"), ep(yes, "", "")},
		}, want: 2},
		{name: "ready in one family only", slices: [][]discoveryv1.Endpoint{
			{ep(no, "a", "", "198.51.100.1")}, {ep(yes, "a", "", "2001:db8::1")},
		}, want: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			relay := &v1alpha1.Relay{ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "r"},
				Spec: v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "media"}}}
			var in []discoveryv1.EndpointSlice
			for _, eps := range tc.slices {
				family := discoveryv1.AddressTypeIPv4
				if len(eps) > 0 && len(eps[0].Addresses) > 0 && strings.Contains(eps[0].Addresses[0], ":") {
					family = discoveryv1.AddressTypeIPv6
				}
				in = append(in, discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Namespace: "calls", Labels: map[string]string{discoveryv1.LabelServiceName: "media"}},
					AddressType: family, Endpoints: eps,
				})
			}
			if got := readyEndpoints(relay, in); got != tc.want {
				t.Errorf("readyEndpoints = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestLiveLeases: Leases seen for the first time are judged by their
// renewTime.
func TestLiveLeases(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	relay := types.NamespacedName{Namespace: "calls", Name: "edge"}
	liveLeases := func(leases []coordinationv1.Lease, now time.Time) ([]string, time.Duration) {
		return newLeaseWatch(clocktesting.NewFakePassiveClock(now)).live(relay, leases)
	}
	l := func(name, holder string, renewed time.Duration, seconds int32) coordinationv1.Lease {
		out := coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if holder != "" {
			out.Spec.HolderIdentity = ptr.To(holder)
		}
		if seconds >= 0 {
			out.Spec.LeaseDurationSeconds = ptr.To(seconds)
		}
		if renewed >= 0 {
			out.Spec.RenewTime = ptr.To(metav1.NewMicroTime(now.Add(-renewed)))
		}
		return out
	}
	live, next := liveLeases([]coordinationv1.Lease{
		l("x1", "node2", 0, 10),                    // 10 s left
		l("x2", "node1", 7*time.Second, 10),        // 3 s left
		l("x3", "node3", 10*time.Second, 10),       // expires exactly now: not live
		l("x4", "node4", time.Hour, 10),            // long gone
		l("x5", "", 0, 60),                         // no holder: named by the Lease
		l("x6", "node6", -1, 60),                   // never renewed
		l("x7", "node7", 0, -1),                    // no duration
		l("x8", "node2", 500*time.Millisecond, 10), // same holder twice
	}, now)
	if diff := cmp.Diff([]string{"node1", "node2", "x5"}, live); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	if want := 3*time.Second + expiryMargin; next != want {
		t.Errorf("next expiry in %v, want %v", next, want)
	}
	if live, next := liveLeases(nil, now); live != nil || next != 0 {
		t.Errorf("no leases: %v %v", live, next)
	}
}

// TestLeaseLivenessIgnoresRelayClocks (review finding 12): once seen, a
// Lease is live while the controller sees it renewed, whatever the relay
// node's clock says.
func TestLeaseLivenessIgnoresRelayClocks(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	relay := types.NamespacedName{Namespace: "calls", Name: "edge"}
	lease := func(renewed time.Time) coordinationv1.Lease {
		return coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "pier-relays", Name: "calls-edge-node1"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node1"), LeaseDurationSeconds: ptr.To(int32(10)),
				RenewTime: ptr.To(metav1.NewMicroTime(renewed))}}
	}
	type step struct {
		after   time.Duration // controller time since start
		renewed bool          // the relay renewed just before
		live    bool
	}
	for _, tc := range []struct {
		name  string
		skew  time.Duration // relay clock minus controller clock
		steps []step
	}{
		{"relay clock an hour behind, renewing", -time.Hour, []step{
			{0, true, false}, // judged by its clock at first sight: long expired
			{2 * time.Second, true, true},
			{4 * time.Second, true, true},
			{13 * time.Second, false, true}, // 9 s since the last renewal seen
			{15 * time.Second, false, false},
		}},
		{"relay clock an hour ahead, stopped", time.Hour, []step{
			{0, true, true},
			{9 * time.Second, false, true},
			{11 * time.Second, false, false}, // by its clock it would live an hour
		}},
		{"clocks agree", 0, []step{
			{0, true, true},
			{5 * time.Second, true, true},
			{14 * time.Second, false, true},
			{16 * time.Second, false, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(start)
			w := newLeaseWatch(clk)
			var renewed time.Time
			for _, st := range tc.steps {
				clk.SetTime(start.Add(st.after))
				if st.renewed {
					renewed = clk.Now().Add(tc.skew)
				}
				live, _ := w.live(relay, []coordinationv1.Lease{lease(renewed)})
				if got := len(live) == 1; got != st.live {
					t.Errorf("%v after start (renewed %v): live %v, want %v", st.after, st.renewed, got, st.live)
				}
			}
		})
	}
}

func testRelay(mutate ...func(*v1alpha1.Relay)) *v1alpha1.Relay {
	r := &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge", UID: "uid-1", Generation: 3},
		Spec:       v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "calling"}},
	}
	for _, m := range mutate {
		m(r)
	}
	return r
}

// apiDefaults fills in what the API server adds to a created Service.
func apiDefaults(svc *corev1.Service) *corev1.Service {
	out := svc.DeepCopy()
	out.Spec.ClusterIP, out.Spec.ClusterIPs = "198.19.240.10", []string{"198.19.240.10"}
	if len(out.Spec.IPFamilies) == 0 {
		out.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	out.Spec.SessionAffinity = corev1.ServiceAffinityNone
	for i := range out.Spec.Ports {
		if out.Spec.Ports[i].NodePort == 0 {
			out.Spec.Ports[i].NodePort = int32(31000 + i)
		}
	}
	out.Annotations = mergeMaps(out.Annotations, map[string]string{v1alpha1.AnnotationAllocatedFromPool: "relays"})
	return out
}

func TestApplyService(t *testing.T) {
	base := testRelay(func(r *v1alpha1.Relay) {
		r.Spec.Exposure.ServiceAnnotations = map[string]string{"example.com/a": "1", "example.com/b": "2"}
	})
	cases := []struct {
		name        string
		relay       *v1alpha1.Relay
		edit        func(*corev1.Service) // someone's change to the stored Service
		wantChanged []string
		check       func(*testing.T, *corev1.Service)
	}{
		{name: "as created", relay: base},
		{name: "port edited", relay: base, edit: func(s *corev1.Service) { s.Spec.Ports[0].Port = 9443 }, wantChanged: []string{"ports"},
			check: func(t *testing.T, s *corev1.Service) {
				if p := s.Spec.Ports[0]; p.Port != 8443 || p.NodePort != 31000 || p.TargetPort != intstr.FromInt32(8443) {
					t.Errorf("port %+v", p)
				}
			}},
		{name: "port added", relay: base, edit: func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "x", Protocol: corev1.ProtocolTCP, Port: 1})
		}, wantChanged: []string{"ports"}},
		{name: "selector, policy and labels edited", relay: base, edit: func(s *corev1.Service) {
			s.Spec.Selector = map[string]string{"app": "other"}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Labels["extra"] = "kept"
			delete(s.Labels, LabelManagedBy)
		}, wantChanged: []string{"labels", "selector", "externalTrafficPolicy"}, check: func(t *testing.T, s *corev1.Service) {
			if s.Labels["extra"] != "kept" || s.Labels[LabelManagedBy] != ManagedByPier {
				t.Errorf("labels %v", s.Labels)
			}
		}},
		{name: "annotation removed from the Relay; others' annotations stay",
			relay: testRelay(func(r *v1alpha1.Relay) {
				r.Spec.Exposure.ServiceAnnotations = map[string]string{"example.com/a": "9"}
			}), wantChanged: []string{"annotations"}, check: func(t *testing.T, s *corev1.Service) {
				want := map[string]string{"example.com/a": "9", annotationCopiedKey: "example.com/a", v1alpha1.AnnotationAllocatedFromPool: "relays"}
				if diff := cmp.Diff(want, s.Annotations); diff != "" {
					t.Errorf("annotations (-want +got):\n%s", diff)
				}
			}},
		{name: "exposure NodePort", relay: testRelay(func(r *v1alpha1.Relay) {
			r.Spec.Exposure = v1alpha1.RelayExposure{Type: v1alpha1.ExposeNodePort, ServiceAnnotations: base.Spec.Exposure.ServiceAnnotations}
			r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: 8443, NodePort: 30443},
				{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: 16384}}
		}), wantChanged: []string{"type", "loadBalancerClass", "ports"}, check: func(t *testing.T, s *corev1.Service) {
			if s.Spec.Ports[0].NodePort != 30443 || s.Spec.Ports[1].NodePort != 31001 || s.Spec.LoadBalancerClass != nil {
				t.Errorf("ports %+v class %v", s.Spec.Ports, s.Spec.LoadBalancerClass)
			}
		}},
		{name: "dual stack", relay: testRelay(func(r *v1alpha1.Relay) {
			r.Spec.Exposure = base.Spec.Exposure
			r.Spec.Exposure.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
			r.Spec.Exposure.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}), wantChanged: []string{"ipFamilyPolicy", "ipFamilies"}},
		{name: "back to single stack", relay: base, edit: func(s *corev1.Service) {
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
		}, wantChanged: []string{"ipFamilyPolicy", "ipFamilies"}, check: func(t *testing.T, s *corev1.Service) {
			if !cmp.Equal(s.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv6Protocol}) {
				t.Errorf("families %v", s.Spec.IPFamilies)
			}
		}},
		{name: "Relay created again", relay: testRelay(func(r *v1alpha1.Relay) {
			r.UID = "uid-2"
			r.Spec.Exposure = base.Spec.Exposure
		}), wantChanged: []string{"owner"}, check: func(t *testing.T, s *corev1.Service) {
			if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "uid-2" {
				t.Errorf("owners %+v", s.OwnerReferences)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stored := apiDefaults(desiredService(base))
			if tc.edit != nil {
				tc.edit(stored)
			}
			got := stored.DeepCopy()
			changed := applyService(got, desiredService(tc.relay))
			if diff := cmp.Diff(tc.wantChanged, changed); diff != "" {
				t.Errorf("changed (-want +got):\n%s", diff)
			}
			if again := applyService(got.DeepCopy(), desiredService(tc.relay)); len(again) > 0 {
				t.Errorf("a second pass changes %v", again)
			}
			if got.Spec.ClusterIP != stored.Spec.ClusterIP {
				t.Errorf("cluster IP changed")
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestStatusFor(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	relay := testRelay()
	svc := apiDefaults(desiredService(relay))
	obs := &observation{exposure: v1alpha1.ExposeLoadBalancer, svc: svc, exposed: exposedFor(v1alpha1.ExposeLoadBalancer, svc)}
	st := statusFor(relay, obs, t0)
	conds := func(st v1alpha1.RelayStatus) map[string]string {
		out := map[string]string{}
		for _, c := range st.Conditions {
			out[c.Type] = string(c.Status) + "/" + c.Reason + "@" + c.LastTransitionTime.UTC().Format(time.TimeOnly)
		}
		return out
	}
	want := map[string]string{"Exposed": "False/AddressPending@03:04:05", "BackendsReady": "False/NoReadyEndpoints@03:04:05", "Ready": "False/NotExposed@03:04:05"}
	if diff := cmp.Diff(want, conds(st)); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	if st.ServiceName != "edge-relay" || st.ObservedGeneration != 3 {
		t.Errorf("status %+v", st)
	}

	relay.Status = st
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.200"}}
	obs = &observation{exposure: v1alpha1.ExposeLoadBalancer, svc: svc, exposed: exposedFor(v1alpha1.ExposeLoadBalancer, svc),
		addresses: []string{"198.51.100.200"}, backends: 2}
	st = statusFor(relay, obs, t0.Add(time.Minute))
	want = map[string]string{"Exposed": "True/AddressAssigned@03:05:05", "BackendsReady": "True/EndpointsReady@03:05:05", "Ready": "False/NoReadyRelays@03:04:05"}
	if diff := cmp.Diff(want, conds(st)); diff != "" {
		t.Errorf("exposed (-want +got):\n%s", diff)
	}

	relay.Status = st
	obs.relays = []string{"node1"}
	st = statusFor(relay, obs, t0.Add(2*time.Minute))
	want["Ready"] = "True/Ready@03:06:05"
	if diff := cmp.Diff(want, conds(st)); diff != "" {
		t.Errorf("ready (-want +got):\n%s", diff)
	}
	if st.ReadyRelays != 1 || st.ReadyBackends != 2 || stateOf(obs, &st) != relayReady {
		t.Errorf("counts %d %d, state %s", st.ReadyRelays, st.ReadyBackends, stateOf(obs, &st))
	}
	relay.Status = st
	if again := statusFor(relay, obs, t0.Add(3*time.Minute)); !cmp.Equal(again, st) {
		t.Errorf("an unchanged observation changes the status:\n%s", cmp.Diff(st, again))
	}

	obs.invalid = "spec.listeners[1].port: 16384/UDP is also spec.listeners[0]"
	st = statusFor(relay, obs, t0.Add(4*time.Minute))
	if got := conds(st)["Ready"]; got != "False/InvalidSpec@03:08:05" || stateOf(obs, &st) != relayInvalid {
		t.Errorf("invalid: Ready %s, state %s", got, stateOf(obs, &st))
	}
}

func TestExposedForNodePort(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np-relay"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "a", Protocol: corev1.ProtocolTCP, NodePort: 30001}, {Name: "b", Protocol: corev1.ProtocolUDP},
	}}}
	if got := exposedFor(v1alpha1.ExposeNodePort, svc); got.ok || got.reason != "NodePortsPending" {
		t.Errorf("without all node ports: %+v", got)
	}
	svc.Spec.Ports[1].NodePort = 30002
	want := exposedCond{ok: true, reason: "NodePortsAllocated", msg: "Service np-relay: node ports 30001/TCP, 30002/UDP"}
	if got := exposedFor(v1alpha1.ExposeNodePort, svc); got != want {
		t.Errorf("exposedFor = %+v, want %+v", got, want)
	}
}

func TestDesiredSlices(t *testing.T) {
	relay := testRelay(func(r *v1alpha1.Relay) {
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "media", Protocol: corev1.ProtocolUDP, Port: 16384}}
	})
	svc := apiDefaults(desiredService(relay))
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	nodes := []relayNode{
		{name: "node1", addrs: []netip.Addr{netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("2001:db8:100::11")}},
		{name: "node2", addrs: []netip.Addr{netip.MustParseAddr("198.51.100.12")}},
	}
	summary := func(es *discoveryv1.EndpointSlice) string {
		s := es.Name + " " + string(es.AddressType) + ":"
		for _, ep := range es.Endpoints {
			s += " " + *ep.NodeName + "=" + ep.Addresses[0]
		}
		for _, p := range es.Ports {
			s += fmt.Sprintf(" port %s %d/%s", *p.Name, *p.Port, *p.Protocol)
		}
		return s + " service=" + es.Labels[discoveryv1.LabelServiceName] + " by=" + es.Labels[discoveryv1.LabelManagedBy]
	}
	var got []string
	for _, es := range desiredSlices(relay, svc, nodes) {
		got = append(got, summary(es))
		if ref := metav1.GetControllerOf(es); ref == nil || ref.UID != relay.UID {
			t.Errorf("%s: controller %+v", es.Name, ref)
		}
	}
	want := []string{
		"edge-relay-ipv6 IPv6: node1=2001:db8:100::11 port media 16384/UDP service=edge-relay by=" + SliceManager,
		"edge-relay-ipv4 IPv4: node1=198.51.100.11 node2=198.51.100.12 port media 16384/UDP service=edge-relay by=" + SliceManager,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slices (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"198.51.100.11", "198.51.100.12", "2001:db8:100::11"}, nodeAddrs(nodes)); diff != "" {
		t.Errorf("nodeAddrs (-want +got):\n%s", diff)
	}
}
