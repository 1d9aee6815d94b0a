package bgpmode

import (
	"context"
	"net/netip"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// followsReadyEndpoints: a BGPAdvertisement that requires ready endpoints
// withdraws a Service (policy Cluster) from FRR when its only endpoint
// stops being ready, and announces it from every node again when it is
// ready. The endpoint names no node: readiness is cluster-wide.
func (w *world) followsReadyEndpoints(t *testing.T) {
	ctx, ns := context.Background(), kubelab.PierNamespace
	must(t, w.env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "ready", Namespace: ns},
		Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.128/28"}, AutoAssign: ptrBool(false)},
	}))
	must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{
		ObjectMeta: metav1.ObjectMeta{Name: "ready", Namespace: ns},
		Spec:       v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"ready"}, Peers: []string{"frr"}, RequireReadyEndpoints: true},
	}))
	addr := w.createService("backed", "ready", false)
	route := netip.PrefixFrom(addr, 32)
	w.setEndpointReady(t, "backed", true)
	w.wantNextHops(route, allNodes(), 30*time.Second)
	w.setEndpointReady(t, "backed", false)
	w.wantNextHops(route, nil, 30*time.Second)
	w.setEndpointReady(t, "backed", true)
	w.wantNextHops(route, allNodes(), 30*time.Second)
}

// setEndpointReady gives svc one endpoint, on no node, ready or not.
func (w *world) setEndpointReady(t *testing.T, svc string, ready bool) {
	t.Helper()
	ctx := context.Background()
	eps := []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.99"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}}
	es := &discoveryv1.EndpointSlice{}
	if err := w.env.Pier.Get(ctx, client.ObjectKey{Namespace: "default", Name: svc + "-lab"}, es); err == nil {
		es.Endpoints = eps
		must(t, w.env.Pier.Update(ctx, es))
		return
	}
	must(t, w.env.Pier.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-lab", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "pier-lab"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
	}))
}
