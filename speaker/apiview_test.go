package speaker

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// The cache keeps, of the objects that grow with the cluster, what the
// speaker reads: Targets and BGPPlan give the same answer from the slim
// objects as from the full ones.
func TestSlimObjectsPlanTheSame(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	svc := lbService("web", "198.51.100.10")
	svc.ManagedFields = managed
	svc.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"big":"json"}`}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc.Spec.Ports = []corev1.ServicePort{{Port: 443}}
	svc.Spec.Selector = map[string]string{"app": "web"}
	svc.Spec.LoadBalancerClass = ptr.To(v1alpha1.LoadBalancerClass)
	svc.Status.Conditions = []metav1.Condition{{Type: "x"}}
	es := slice("web", map[string]bool{"node1": true, "node2": false})
	es.ManagedFields = managed
	es.Ports = []discoveryv1.EndpointPort{{Port: ptr.To[int32](443)}}
	// More Pods: two more on node1 (one entry kept for the three), one
	// ready but terminating on node2, one on no node.
	es.Endpoints = append(es.Endpoints, es.Endpoints...)
	es.Endpoints = append(es.Endpoints, es.Endpoints[0],
		discoveryv1.Endpoint{NodeName: ptr.To("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Terminating: ptr.To(true)}},
		discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	for i := range es.Endpoints {
		es.Endpoints[i].Addresses = []string{fmt.Sprintf("10.0.0.%d", i)}
		es.Endpoints[i].TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("web-%d", i)}
	}
	n1 := node("node1", map[string]string{"zone": "a"},
		corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, LastHeartbeatTime: metav1.Now()})
	n1.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.11"}}
	n1.Status.Images = []corev1.ContainerImage{{Names: []string{"registry/image:tag"}, SizeBytes: 1 << 20}}
	n1.ManagedFields = managed
	n2 := node("node2", nil, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})

	orphan := lbService("orphan", "203.0.113.99") // its pool is gone
	orphan.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: "gone", "note": "x"}

	// Services Pier never serves, with addresses another implementation gave.
	internal := lbService("internal", "198.51.100.20")
	internal.Spec.Type = corev1.ServiceTypeClusterIP
	internal.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: "l2"}
	foreign := lbService("foreign", "198.51.100.21")
	foreign.Spec.LoadBalancerClass = ptr.To("example.com/other")

	full := Inputs{Services: []corev1.Service{svc, orphan, internal, foreign}, EndpointSlices: []discoveryv1.EndpointSlice{es}, Nodes: []corev1.Node{n1, n2}}
	var thin Inputs
	for _, o := range full.Services {
		o = *o.DeepCopy()
		slimService(&o)
		thin.Services = append(thin.Services, o)
	}
	for _, o := range full.EndpointSlices {
		o = *o.DeepCopy()
		slimSlice(&o)
		thin.EndpointSlices = append(thin.EndpointSlices, o)
	}
	for _, o := range full.Nodes {
		o = *o.DeepCopy()
		slimNode(&o)
		thin.Nodes = append(thin.Nodes, o)
	}
	for _, in := range []*Inputs{&full, &thin} {
		in.Config = planConfig(t)
		in.Last = []Target{{Addr: netip.MustParseAddr("203.0.113.99"), Service: "default/orphan", Nodes: map[string][]string{"node1": {"eth1"}}}}
	}
	if len(Targets(full)) != 2 {
		t.Fatalf("targets %+v: want both Services, or the test proves nothing", Targets(full))
	}
	if diff := cmp.Diff(Targets(full), Targets(thin), addrCmp); diff != "" {
		t.Errorf("targets from slim objects (-full +slim):\n%s", diff)
	}
	if diff := cmp.Diff(BGPPlan(full, "node1", nil), BGPPlan(thin, "node1", nil), announcedOpts...); diff != "" {
		t.Errorf("BGP plan from slim objects (-full +slim):\n%s", diff)
	}
	if got := thin.Services[0]; got.ManagedFields != nil || len(got.Annotations) != 0 || got.Spec.Ports != nil || got.Spec.Selector != nil {
		t.Errorf("Service kept more than the speaker reads: %+v", got)
	}
	if got := thin.Services[1].Annotations; len(got) != 1 {
		t.Errorf("orphan's annotations %v, want Pier's only", got)
	}
	twin := lbService("twin", "198.51.100.11")
	twin.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: "gone", "other.example/x": "y"}
	slimService(&twin)
	if !sameAnnotations(twin.Annotations, thin.Services[1].Annotations) {
		t.Errorf("Services of one pool keep a map each: %v and %v", twin.Annotations, thin.Services[1].Annotations)
	}
	for _, got := range thin.Services[2:] {
		if got.Labels != nil || got.Annotations != nil || got.Status.LoadBalancer.Ingress != nil {
			t.Errorf("Service %s, never served, kept more than its name, type and class: %+v", got.Name, got)
		}
	}
	for _, onlyOwn := range []bool{false, true} {
		full.OnlyOwnClass, thin.OnlyOwnClass = onlyOwn, onlyOwn
		if diff := cmp.Diff(Targets(full), Targets(thin), addrCmp); diff != "" {
			t.Errorf("OnlyOwnClass %v: targets from slim objects (-full +slim):\n%s", onlyOwn, diff)
		}
	}
	if got := len(thin.EndpointSlices[0].Endpoints); got != 4 {
		t.Errorf("slice keeps %d endpoints, want 4 (node1 ready, node2 not, node2 terminating, no node): %+v", got, thin.EndpointSlices[0].Endpoints)
	}
	if got := thin.Nodes[0].Status; got.Images != nil || !got.Conditions[0].LastHeartbeatTime.IsZero() {
		t.Errorf("Node kept more than the speaker reads: %+v", got)
	}
}

// planConfig has pool l2 (198.51.100.0/24) advertised over L2 to the
// Services labelled app=web on the nodes of zone a, and over BGP to peer
// r1.
func planConfig(t testing.TB) *config.Config {
	t.Helper()
	web := []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}}
	zoneA := []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
	cfg, err := config.Parse(config.Objects{
		Pools: []v1alpha1.IPAddressPool{{ObjectMeta: metaNS("l2", "pier-system"),
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.0/24"}}}},
		L2Advertisements: []v1alpha1.L2Advertisement{{ObjectMeta: metaNS("l2", "pier-system"),
			Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}, ServiceSelectors: web, NodeSelectors: zoneA}}},
		BGPPeers: []v1alpha1.BGPPeer{{ObjectMeta: metaNS("r1", "pier-system"),
			Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1", NodeSelectors: zoneA}}},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{{ObjectMeta: metaNS("bgp", "pier-system"),
			Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"}, ServiceSelectors: web}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// An update that changes nothing the speaker keeps (a heartbeat, a
// resync) is no change of its view; one that changes what it reads is.
func TestReadChanged(t *testing.T) {
	base := node("node1", map[string]string{"zone": "a"}, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue})
	base.ResourceVersion = "1"
	slimNode(&base)
	at := func(rv string, mutate func(*corev1.Node)) *corev1.Node {
		n := base.DeepCopy()
		n.ResourceVersion = rv
		n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Unix(int64(len(rv)), 0))
		mutate(n)
		slimNode(n)
		return n
	}
	for _, tc := range []struct {
		name string
		new  *corev1.Node
		want bool
	}{
		{"resync", at("1", func(*corev1.Node) {}), false},
		{"heartbeat", at("2", func(*corev1.Node) {}), false},
		{"image pulled", at("3", func(n *corev1.Node) { n.Status.Images = []corev1.ContainerImage{{Names: []string{"x"}}} }), false},
		{"label", at("4", func(n *corev1.Node) { n.Labels["zone"] = "b" }), true},
		{"network unavailable", at("5", func(n *corev1.Node) {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})
		}), true},
		{"address", at("6", func(n *corev1.Node) {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.12"}}
		}), true},
	} {
		if got := readChanged(&base, tc.new); got != tc.want {
			t.Errorf("%s: changed %v, want %v", tc.name, got, tc.want)
		}
	}
}

func sameAnnotations(a, b map[string]string) bool {
	return a != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
