package bgpmode

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	// Every node says why it does not announce it, and to whom it would.
	w.wantAnnounced(t, "default/backed", v1alpha1.BGPServiceAnnouncement{Service: "default/backed",
		Addresses: []string{addr.String()}, Peers: []string{"frr"}, NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints})
	w.setEndpointReady(t, "backed", true)
	w.wantNextHops(route, allNodes(), 30*time.Second)
	w.wantAnnounced(t, "default/backed", v1alpha1.BGPServiceAnnouncement{Service: "default/backed",
		Addresses: []string{addr.String()}, Peers: []string{"frr"}})
}

// wantAnnounced waits until every node's BGPAnnouncementStatus lists svc
// as want.
func (w *world) wantAnnounced(t *testing.T, svc string, want v1alpha1.BGPServiceAnnouncement) {
	t.Helper()
	for _, node := range []string{"node1", "node2", "node3"} {
		poll(t, "BGPAnnouncementStatus "+node+" of "+svc, 30*time.Second, func() error {
			var obj v1alpha1.BGPAnnouncementStatus
			if err := w.env.Pier.Get(context.Background(), client.ObjectKey{Namespace: kubelab.PierNamespace, Name: node}, &obj); err != nil {
				return err
			}
			for _, a := range obj.Status.Services {
				if a.Service == svc {
					if diff := cmp.Diff(want, a); diff != "" {
						return fmt.Errorf("(-want +got):\n%s", diff)
					}
					return nil
				}
			}
			return fmt.Errorf("%s not listed", svc)
		})
	}
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
