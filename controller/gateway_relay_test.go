package controller_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller/gatewayctl"
)

// weightedSlices lists the Gateway Service's slices as "port weight:
// addrs".
func (g *gwEnv) weightedSlices(ctx context.Context, gateway string) ([]string, error) {
	return g.listSlices(ctx, gateway, func(es *discoveryv1.EndpointSlice, addrs []string) string {
		return fmt.Sprintf("%s/%d weight %q: %v", *es.Ports[0].Name, *es.Ports[0].Port, es.Labels[v1alpha1.LabelEndpointWeight], addrs)
	})
}

// TestGatewayAPIRelay runs the Gateway controller with the Relay
// controller against a real API server: a class whose parameters say
// dataPath Relay gets each Gateway a Relay, with the listeners, the PROXY
// protocol and the Gateway's address, a headless Service whose slices
// carry the routes' weights, and the Relay's address as the Gateway's;
// the class going back to kube-proxy takes the Relay away and marks the
// weights it cannot honour.
func TestGatewayAPIRelay(t *testing.T) {
	g := newGatewayEnv(t)
	params := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pierNS, Name: "relay-path"},
		Data: map[string]string{"dataPath": "Relay", "proxyProtocol": "true", "routingKey": "ClientAddress"}}
	g.create(params)
	g.gcreate(&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "pier-relay"}, Spec: gwv1.GatewayClassSpec{
		ControllerName: gatewayctl.ControllerName,
		ParametersRef:  &gwv1.ParametersReference{Kind: "ConfigMap", Name: "relay-path", Namespace: ptr.To(gwv1.Namespace(pierNS))}}})
	g.gcreate(callServer("calls"))
	g.gcreate(callServerSlice("calls", map[string]bool{"10.0.0.1": true, "10.0.0.2": true}))
	canary := callServer("calls")
	canary.Name = "canary"
	g.gcreate(canary)
	canarySlice := callServerSlice("calls", map[string]bool{"10.0.1.1": true})
	canarySlice.Name, canarySlice.Labels[discoveryv1.LabelServiceName] = "canary-1", "canary"
	g.gcreate(canarySlice)

	gw := edgeGateway("edge", "198.51.100.211", tcpL, udpL)
	gw.Spec.GatewayClassName = "pier-relay"
	g.gcreate(gw)
	weighted := func(name string, w int32) gwv1.BackendRef {
		r := backend("", name, 5061)
		r.Weight = ptr.To(w)
		return r
	}
	sip := tcpRoute("sip", "edge", weighted("callserver", 90), func(r *gwv1.TCPRoute) {
		r.Spec.Rules[0].BackendRefs = append(r.Spec.Rules[0].BackendRefs, weighted("canary", 10))
	})
	g.gcreate(sip)
	g.gcreate(&gwv1.UDPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "rtp"},
		Spec: gwv1.UDPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
			Rules:           []gwv1.UDPRouteRule{{BackendRefs: []gwv1.BackendRef{backend("", "callserver", 20000)}}},
		},
	})

	got := g.waitGateway("edge", "Programmed", metav1.ConditionTrue, "Programmed")
	want := []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.IPAddressType), Value: "198.51.100.211"}}
	if diff := cmp.Diff(want, got.Status.Addresses); diff != "" {
		t.Errorf("status.addresses (-want +got):\n%s", diff)
	}
	if addrs := g.waitAssigned("calls", "edge-gateway-relay"); !cmp.Equal(addrs, []string{"198.51.100.211"}) {
		t.Errorf("the Relay's Service has %v, want the Gateway's address", addrs)
	}
	var relay v1alpha1.Relay
	if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: "calls", Name: "edge-gateway"}, &relay); err != nil {
		t.Fatal(err)
	}
	wantSpec := []v1alpha1.RelayListener{{Name: "tcp-8443", Protocol: corev1.ProtocolTCP, Port: 8443},
		{Name: "udp-16384", Protocol: corev1.ProtocolUDP, Port: 16384}}
	if diff := cmp.Diff(wantSpec, relay.Spec.Listeners); diff != "" {
		t.Errorf("Relay listeners (-want +got):\n%s", diff)
	}
	if b := relay.Spec.Backend; b.ServiceName != "edge-gateway" || !b.ProxyProtocol || relay.Spec.Routing.Key != v1alpha1.RoutingKeyClientAddress {
		t.Errorf("Relay backend %+v, routing %+v", b, relay.Spec.Routing)
	}
	var svc corev1.Service
	if err := g.gc.Get(context.Background(), client.ObjectKey{Namespace: "calls", Name: "edge-gateway"}, &svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service edge-gateway: %s %s, want headless", svc.Spec.Type, svc.Spec.ClusterIP)
	}
	g.poll("weighted slices", func(ctx context.Context) error {
		got, err := g.weightedSlices(ctx, "edge")
		if err != nil {
			return err
		}
		want := []string{
			`tcp-8443/15061 weight "1000000": [10.0.0.1 10.0.0.2]`,
			`tcp-8443/15061 weight "222222": [10.0.1.1]`,
			`udp-16384/30000 weight "1000000": [10.0.0.1 10.0.0.2]`,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("(-want +got):\n%s", diff)
		}
		return nil
	})

	t.Run("back to kube-proxy: the Relay goes, the weights are refused", func(t *testing.T) {
		params.Data = map[string]string{"dataPath": "KubeProxy"}
		if err := g.c.Update(context.Background(), params); err != nil {
			t.Fatal(err)
		}
		g.poll("Relay edge-gateway gone", func(ctx context.Context) error {
			err := g.c.Get(ctx, client.ObjectKey{Namespace: "calls", Name: "edge-gateway"}, &v1alpha1.Relay{})
			if err == nil {
				return fmt.Errorf("still there")
			}
			return client.IgnoreNotFound(err)
		})
		if addrs := g.waitAssigned("calls", "edge-gateway"); !cmp.Equal(addrs, []string{"198.51.100.211"}) {
			t.Errorf("Service edge-gateway has %v, want the Gateway's address", addrs)
		}
		g.poll("sip's weights refused", func(ctx context.Context) error {
			var r gwv1.TCPRoute
			if err := g.gc.Get(ctx, client.ObjectKeyFromObject(sip), &r); err != nil {
				return err
			}
			for _, p := range r.Status.Parents {
				if got := summary(p.Conditions, gatewayctl.ConditionWeightsHonored); got != "False UnsupportedValue" {
					return fmt.Errorf("%s is %s", gatewayctl.ConditionWeightsHonored, got)
				}
				return nil
			}
			return fmt.Errorf("no parents")
		})
		g.waitGateway("edge", "Programmed", metav1.ConditionTrue, "Programmed")
	})
	t.Run("parameters that do not parse: the class is refused", func(t *testing.T) {
		params.Data = map[string]string{"dataPath": "Envoy"}
		if err := g.c.Update(context.Background(), params); err != nil {
			t.Fatal(err)
		}
		g.poll("class refused", func(ctx context.Context) error {
			var class gwv1.GatewayClass
			if err := g.gc.Get(ctx, client.ObjectKey{Name: "pier-relay"}, &class); err != nil {
				return err
			}
			return condIs(class.Status.Conditions, "Accepted", metav1.ConditionFalse, "InvalidParameters")
		})
		g.waitGateway("edge", "Accepted", metav1.ConditionFalse, "InvalidParameters")
	})
}
