package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// The cache's trimmed slices give the same backends as the slices the API
// server sends, with everything else an EndpointSlice carries.
func TestSlimSliceKeepsBackends(t *testing.T) {
	full := slice("a", "media", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("calls-udp", 5060)},
		ep{addr: "198.51.100.1", hostname: "srv1"}, ep{addr: "198.51.100.2", target: "srv2"},
		ep{addr: "198.51.100.3", ready: ptr.To(false)}, ep{addr: "198.51.100.4", terminating: ptr.To(true)},
		ep{addr: "198.51.100.5"})
	full.Labels["app"] = "media"
	full.Annotations = map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2020-01-01T00:00:00Z"}
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}
	for i := range full.Endpoints {
		full.Endpoints[i].NodeName = ptr.To("node1")
		full.Endpoints[i].Zone = ptr.To("z1")
		full.Endpoints[i].Conditions.Serving = ptr.To(true)
	}
	r := calls("a", "r")
	want := Backends(&r, []discoveryv1.EndpointSlice{full})
	slim := *full.DeepCopy()
	slimSlice(&slim)
	if diff := cmp.Diff(want, Backends(&r, []discoveryv1.EndpointSlice{slim}), cmpAddr); diff != "" {
		t.Errorf("backends of the trimmed slice (-full +trimmed):\n%s", diff)
	}
	if slim.ManagedFields != nil || slim.Annotations != nil || len(slim.Labels) != 1 || slim.Endpoints[0].NodeName != nil {
		t.Errorf("trimmed slice keeps what the agent does not read: %+v", slim)
	}
}

func TestUpdated(t *testing.T) {
	node := func(rv string, mod ...func(*corev1.Node)) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", ResourceVersion: rv, Labels: map[string]string{"zone": "a"}}}
		for _, m := range mod {
			m(n)
		}
		slimNode(n)
		return n
	}
	heartbeat := func(n *corev1.Node) {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, LastHeartbeatTime: metav1.Now()}}
	}
	relabel := func(n *corev1.Node) { n.Labels = map[string]string{"zone": "b"} }
	relay := calls("a", "r")
	for _, tc := range []struct {
		name     string
		old, obj any
		want     bool
	}{
		{"resync", node("1"), node("1"), false},
		{"node status (dropped by the cache)", node("1"), node("2", heartbeat), false},
		{"node labels", node("1"), node("2", relabel), true},
		{"relay status", &relay, func() *v1alpha1.Relay {
			r := relay.DeepCopy()
			r.ResourceVersion, r.Status.Addresses = "2", []string{"192.0.2.1"}
			return r
		}(), true},
		{"not an object", "x", "y", true},
	} {
		if got := updated(tc.old, tc.obj); got != tc.want {
			t.Errorf("%s: updated %v, want %v", tc.name, got, tc.want)
		}
	}
}
