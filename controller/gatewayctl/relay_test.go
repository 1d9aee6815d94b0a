package gatewayctl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/controller/gatewayctl"
)

var relayParams = config.GatewayParameters{DataPath: config.GatewayRelay, ProxyProtocol: true, RoutingKey: v1alpha1.RoutingKeyClientAddress}

// withCanary adds a Service canary (one ready endpoint, 10.0.1.1) to in.
func withCanary(in *gatewayctl.Input) *gatewayctl.Input {
	key := types.NamespacedName{Namespace: "calls", Name: "canary"}
	in.Services[key] = backendService("calls", "canary")
	in.Slices[key] = []*discoveryv1.EndpointSlice{backendSlice("calls", "canary", map[string]bool{"10.0.1.1": true})}
	return in
}

func weight(w int32) func(*gwv1.BackendRef) { return func(r *gwv1.BackendRef) { r.Weight = ptr.To(w) } }

// TestBuildRelay is the mapping of the relay data path: a headless
// Service whose slices carry the weights, and a Relay owned by the
// Gateway with its listeners, PROXY protocol, routing key and addresses.
func TestBuildRelay(t *testing.T) {
	gw := gateway(func(gw *gwv1.Gateway) {
		gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.IPAddressType), Value: "198.51.100.210"}}
		gw.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "calls"}
	})
	in := withCanary(input(gw,
		route(gatewayctl.KindTCPRoute, "sip", backendRef("callserver", 5061, weight(90)), backendRef("canary", 5061, weight(10))),
		route(gatewayctl.KindUDPRoute, "rtp", backendRef("callserver", 20000))))
	in.Params = relayParams
	out := gatewayctl.Build(in)

	owner := []metav1.OwnerReference{{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: "edge",
		UID: "gw-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	labels := map[string]string{gatewayctl.LabelManagedBy: gatewayctl.ManagedByPier, gwv1.GatewayNameLabelKey: "edge",
		gwv1.GatewayClassNameLabelKey: "pier"}
	ports := []corev1.ServicePort{{Name: "tcp-8443", Protocol: corev1.ProtocolTCP, Port: 8443},
		{Name: "udp-16384", Protocol: corev1.ProtocolUDP, Port: 16384}}
	wantSvc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge-gateway", Labels: labels, OwnerReferences: owner},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack), Ports: ports},
	}
	if diff := cmp.Diff(wantSvc, out.Service); diff != "" {
		t.Errorf("Service (-want +got):\n%s", diff)
	}
	wantRelay := &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge-gateway", Labels: labels, OwnerReferences: owner},
		Spec: v1alpha1.RelaySpec{
			Listeners: []v1alpha1.RelayListener{{Name: "tcp-8443", Protocol: corev1.ProtocolTCP, Port: 8443},
				{Name: "udp-16384", Protocol: corev1.ProtocolUDP, Port: 16384}},
			Backend: v1alpha1.RelayBackend{ServiceName: "edge-gateway", ProxyProtocol: true},
			Exposure: v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer,
				ServiceAnnotations: map[string]string{v1alpha1.AnnotationAddressPool: "calls", v1alpha1.AnnotationLoadBalancerIPs: "198.51.100.210"},
				IPFamilyPolicy:     ptr.To(corev1.IPFamilyPolicySingleStack), IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
			Routing:  v1alpha1.RelayRouting{Key: v1alpha1.RoutingKeyClientAddress},
			DataPath: v1alpha1.DataPathUserspace,
		},
	}
	if diff := cmp.Diff(wantRelay, out.Relay); diff != "" {
		t.Errorf("Relay (-want +got):\n%s", diff)
	}
	// 90 over callserver's two ready endpoints, 10 over canary's one: the
	// heaviest endpoint has MaxWeight, canary 10/45 of it.
	type slice struct {
		Port   string
		Target int32
		Weight string
		Addrs  []string
	}
	var got []slice
	for _, es := range out.Slices {
		s := slice{Port: *es.Ports[0].Name, Target: *es.Ports[0].Port, Weight: es.Labels[v1alpha1.LabelEndpointWeight]}
		for _, e := range es.Endpoints {
			s.Addrs = append(s.Addrs, e.Addresses...)
		}
		if es.Labels[discoveryv1.LabelServiceName] != "edge-gateway" || es.Labels[discoveryv1.LabelManagedBy] != gatewayctl.SliceManager {
			t.Errorf("slice %s labels %v", es.Name, es.Labels)
		}
		got = append(got, s)
	}
	want := []slice{
		{"tcp-8443", 15061, "1000000", []string{"10.0.0.1", "10.0.0.2"}},
		{"tcp-8443", 15061, "222222", []string{"10.0.1.1"}},
		{"udp-16384", 30000, "1000000", []string{"10.0.0.1", "10.0.0.2"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slices (-want +got):\n%s", diff)
	}
	for _, parents := range out.Routes {
		for _, c := range parents[0].Conditions {
			if c.Type == gatewayctl.ConditionWeightsHonored {
				t.Errorf("relay data path: condition %s set: %s", c.Type, c.Message)
			}
		}
	}
	prog := summary(out.Status.Conditions)["Programmed"]
	if prog != "False AddressNotAssigned" || !strings.Contains(out.Status.Conditions[1].Message, "Relay edge-gateway") {
		t.Errorf("before the Relay exists: Programmed %s: %s", prog, out.Status.Conditions[1].Message)
	}

	// The Relay's controller gives it its address: the Gateway is
	// programmed with the Relay's addresses.
	in.Relay = out.Relay.DeepCopy()
	in.Relay.Status = v1alpha1.RelayStatus{Addresses: []string{"198.51.100.210"}, ReadyRelays: 3}
	out = gatewayctl.Build(in)
	wantAddrs := []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.IPAddressType), Value: "198.51.100.210"}}
	if diff := cmp.Diff(wantAddrs, out.Status.Addresses); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	wantProg := cond("Programmed", metav1.ConditionTrue, "Programmed", "Relay edge-gateway: 198.51.100.210 (3 relays ready)", 3)
	if diff := cmp.Diff(wantProg, out.Status.Conditions[1]); diff != "" {
		t.Errorf("Programmed (-want +got):\n%s", diff)
	}
}

// TestBuildRelayCases: what the Relay and the slices become, and the
// weights condition of the kube-proxy path.
func TestBuildRelayCases(t *testing.T) {
	manyListeners := gateway(func(gw *gwv1.Gateway) {
		gw.Spec.Listeners = nil
		for i := range 17 {
			gw.Spec.Listeners = append(gw.Spec.Listeners, gwv1.Listener{Name: gwv1.SectionName(fmt.Sprint("l", i)),
				Protocol: gwv1.UDPProtocolType, Port: gwv1.PortNumber(20000 + i)})
		}
	})
	tcp := func(refs ...gwv1.BackendRef) gatewayctl.Route { return route(gatewayctl.KindTCPRoute, "sip", refs...) }
	for _, tc := range []struct {
		name      string
		in        *gatewayctl.Input
		params    config.GatewayParameters
		relay     bool
		weights   map[string]string // slice name -> weight label
		condition string            // the route's WeightsHonored condition, "" when absent
		prog      string
	}{{
		name: "kube-proxy: unequal shares are not honoured", params: config.GatewayParameters{},
		in:        withCanary(input(gateway(), tcp(backendRef("callserver", 5061, weight(90)), backendRef("canary", 5061, weight(10))))),
		weights:   map[string]string{"edge-gateway-tcp-8443-15061-ipv4": ""},
		condition: "False UnsupportedValue", prog: "False AddressNotAssigned",
	}, {
		name: "kube-proxy: weights giving equal shares are honoured",
		in:   withCanary(input(gateway(), tcp(backendRef("callserver", 5061, weight(2)), backendRef("canary", 5061, weight(1))))),
		// callserver's 2 endpoints at 1 each, canary's one at 1.
		weights: map[string]string{"edge-gateway-tcp-8443-15061-ipv4": ""},
		prog:    "False AddressNotAssigned",
	}, {
		name:    "kube-proxy: weight 0 takes the backend out",
		in:      withCanary(input(gateway(), tcp(backendRef("callserver", 5061, weight(0)), backendRef("canary", 5061, weight(5))))),
		weights: map[string]string{"edge-gateway-tcp-8443-15061-ipv4": ""},
		prog:    "False AddressNotAssigned",
	}, {
		name: "relay: weight 0 takes the backend out", params: relayParams, relay: true,
		in:      withCanary(input(gateway(), tcp(backendRef("callserver", 5061, weight(0)), backendRef("canary", 5061, weight(5))))),
		weights: map[string]string{"edge-gateway-tcp-8443-15061-ipv4-w1000000": "1000000"},
		prog:    "False AddressNotAssigned",
	}, {
		// callserver's endpoints have 500000 each, canary's one 1: 2 of
		// the top's 1000000.
		name: "relay: the smallest share keeps its proportion", params: relayParams, relay: true,
		in:      withCanary(input(gateway(), tcp(backendRef("callserver", 5061, weight(1_000_000)), backendRef("canary", 5061, weight(1))))),
		weights: map[string]string{"edge-gateway-tcp-8443-15061-ipv4-w1000000": "1000000", "edge-gateway-tcp-8443-15061-ipv4-w2": "2"},
		prog:    "False AddressNotAssigned",
	}, {
		name: "relay: one endpoint in two backendRefs sums its shares", params: relayParams, relay: true,
		in:      input(gateway(), tcp(backendRef("callserver", 5061, weight(1)), backendRef("callserver", 5061, weight(3)))),
		weights: map[string]string{"edge-gateway-tcp-8443-15061-ipv4-w1000000": "1000000"},
		prog:    "False AddressNotAssigned",
	}, {
		name: "relay: more listeners than a Relay takes", params: relayParams,
		in:   input(manyListeners),
		prog: "False NoResources",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Params = tc.params
			out := gatewayctl.Build(tc.in)
			if (out.Relay != nil) != tc.relay {
				t.Errorf("Relay %v, want one: %v", out.Relay != nil, tc.relay)
			}
			got := map[string]string{}
			for _, es := range out.Slices {
				got[es.Name] = es.Labels[v1alpha1.LabelEndpointWeight]
			}
			if diff := cmp.Diff(tc.weights, got, cmpEmpty); diff != "" {
				t.Errorf("slice weights (-want +got):\n%s", diff)
			}
			cond := ""
			for _, parents := range out.Routes {
				if s, ok := summary(parents[0].Conditions)[gatewayctl.ConditionWeightsHonored]; ok {
					cond = s
				}
			}
			if cond != tc.condition {
				t.Errorf("%s: %q, want %q", gatewayctl.ConditionWeightsHonored, cond, tc.condition)
			}
			if p := summary(out.Status.Conditions)["Programmed"]; p != tc.prog {
				t.Errorf("Programmed %s, want %s", p, tc.prog)
			}
		})
	}
}

var cmpEmpty = cmp.Comparer(func(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || cmp.Equal(a, b))
})

// TestBuildWeightsConditionGoes: the condition leaves once the weights
// are even again.
func TestBuildWeightsConditionGoes(t *testing.T) {
	in := withCanary(input(gateway(), route(gatewayctl.KindTCPRoute, "sip",
		backendRef("callserver", 5061, weight(90)), backendRef("canary", 5061, weight(10)))))
	out := gatewayctl.Build(in)
	in.Routes[0].Status.Parents = out.Routes[0]
	in.Routes[0].BackendRefs = []gwv1.BackendRef{backendRef("callserver", 5061)}
	out = gatewayctl.Build(in)
	if _, ok := summary(out.Routes[0][0].Conditions)[gatewayctl.ConditionWeightsHonored]; ok {
		t.Errorf("condition kept: %v", out.Routes[0][0].Conditions)
	}
}

func TestClassParams(t *testing.T) {
	ref := func(group, kind, ns, name string) *gwv1.ParametersReference {
		r := &gwv1.ParametersReference{Group: gwv1.Group(group), Kind: gwv1.Kind(kind), Name: name}
		if ns != "" {
			r.Namespace = ptr.To(gwv1.Namespace(ns))
		}
		return r
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "pier-system", Name: "relay"},
		Data: map[string]string{"dataPath": "Relay", "proxyProtocol": "true"}}
	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "pier-system", Name: "relay"},
		Data: map[string]string{"dataPath": "Envoy"}}
	for _, tc := range []struct {
		name    string
		ref     *gwv1.ParametersReference
		cm      *corev1.ConfigMap
		want    config.GatewayParameters
		problem string
	}{
		{name: "no parameters: kube-proxy", want: config.GatewayParameters{DataPath: config.GatewayKubeProxy, RoutingKey: v1alpha1.RoutingKeyClientAddressPort}},
		{name: "relay", ref: ref("", "ConfigMap", "pier-system", "relay"), cm: cm,
			want: config.GatewayParameters{DataPath: config.GatewayRelay, ProxyProtocol: true, RoutingKey: v1alpha1.RoutingKeyClientAddressPort}},
		{name: "another kind", ref: ref("example.net", "Params", "", "x"),
			problem: "parametersRef example.net/Params x: Pier's GatewayClass takes a ConfigMap"},
		{name: "another namespace", ref: ref("", "ConfigMap", "default", "relay"),
			problem: "parametersRef ConfigMap relay: must be in Pier's namespace pier-system"},
		{name: "missing", ref: ref("", "ConfigMap", "pier-system", "relay"),
			problem: "parametersRef ConfigMap pier-system/relay not found"},
		{name: "invalid", ref: ref("", "ConfigMap", "pier-system", "relay"), cm: bad,
			problem: `ConfigMap pier-system/relay: data.dataPath: "Envoy": want KubeProxy or Relay`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "pier"},
				Spec: gwv1.GatewayClassSpec{ControllerName: gatewayctl.ControllerName, ParametersRef: tc.ref}}
			got, problem := gatewayctl.ClassParams(class, tc.cm, "pier-system")
			if problem != tc.problem {
				t.Errorf("problem %q, want %q", problem, tc.problem)
			}
			if tc.problem == "" {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("parameters (-want +got):\n%s", diff)
				}
			}
			st := gatewayctl.ClassStatus(class, problem, now)
			wantAccepted := "True Accepted"
			if tc.problem != "" {
				wantAccepted = "False InvalidParameters"
			}
			if s := summary(st.Conditions)["Accepted"]; s != wantAccepted {
				t.Errorf("Accepted %s, want %s", s, wantAccepted)
			}
		})
	}
}
