package gatewayctl_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/controller/gatewayctl"
)

var now = metav1.NewTime(time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC))

func gateway(mutate ...func(*gwv1.Gateway)) *gwv1.Gateway {
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge", UID: "gw-uid", Generation: 3},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: "pier",
			Listeners: []gwv1.Listener{
				{Name: "signalling", Protocol: gwv1.TCPProtocolType, Port: 8443},
				{Name: "media", Protocol: gwv1.UDPProtocolType, Port: 16384},
			},
		},
	}
	for _, m := range mutate {
		m(gw)
	}
	return gw
}

func backendRef(name string, port int32, mutate ...func(*gwv1.BackendRef)) gwv1.BackendRef {
	r := gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(port)}}
	for _, m := range mutate {
		m(&r)
	}
	return r
}

func route(kind gwv1.Kind, name string, refs ...gwv1.BackendRef) gatewayctl.Route {
	return gatewayctl.Route{Kind: kind, Namespace: "calls", Name: name, Generation: 2,
		ParentRefs: []gwv1.ParentReference{{Name: "edge"}}, BackendRefs: refs}
}

func backendService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "sip", Protocol: corev1.ProtocolTCP, Port: 5061},
			{Name: "rtp", Protocol: corev1.ProtocolUDP, Port: 20000},
		}},
	}
}

// backendSlice lists addrs with their readiness; sip targets 15061, rtp
// 30000.
func backendSlice(ns, svc string, addrs map[string]bool) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("sip"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](15061)},
			{Name: ptr.To("rtp"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](30000)},
		},
	}
	for a, ready := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}})
	}
	return es
}

func input(gw *gwv1.Gateway, routes ...gatewayctl.Route) *gatewayctl.Input {
	key := types.NamespacedName{Namespace: "calls", Name: "callserver"}
	return &gatewayctl.Input{
		Gateway:  gw,
		Routes:   routes,
		Services: map[types.NamespacedName]*corev1.Service{key: backendService("calls", "callserver")},
		Slices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{key: {
			backendSlice("calls", "callserver", map[string]bool{"10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": false}),
		}},
		Now: now,
	}
}

func cond(typ string, status metav1.ConditionStatus, reason, msg string, gen int64) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: now}
}

func readySlice(name, port string, proto corev1.Protocol, target int32, addrs ...string) *discoveryv1.EndpointSlice {
	owner := metav1.OwnerReference{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: "edge", UID: "gw-uid",
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: name, OwnerReferences: []metav1.OwnerReference{owner},
			Labels: map[string]string{discoveryv1.LabelServiceName: "edge-gateway", discoveryv1.LabelManagedBy: gatewayctl.SliceManager,
				gatewayctl.LabelManagedBy: gatewayctl.ManagedByPier, gwv1.GatewayNameLabelKey: "edge"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(port), Protocol: ptr.To(proto), Port: ptr.To(target)}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
	}
	return es
}

// TestBuildServed is the whole mapping for a Gateway with a TCP and a UDP
// listener and a route to each, before and after the Service got its
// address.
func TestBuildServed(t *testing.T) {
	in := input(gateway(), route(gatewayctl.KindTCPRoute, "sip", backendRef("callserver", 5061)),
		route(gatewayctl.KindUDPRoute, "rtp", backendRef("callserver", 20000)))
	out := gatewayctl.Build(in)

	group := gwv1.Group(gwv1.GroupName)
	wantSvc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge-gateway",
			Labels: map[string]string{gatewayctl.LabelManagedBy: gatewayctl.ManagedByPier, gwv1.GatewayNameLabelKey: "edge",
				gwv1.GatewayClassNameLabelKey: "pier"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: "edge",
				UID: "gw-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.LoadBalancerClass),
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
			Ports: []corev1.ServicePort{{Name: "tcp-8443", Protocol: corev1.ProtocolTCP, Port: 8443},
				{Name: "udp-16384", Protocol: corev1.ProtocolUDP, Port: 16384}},
		},
	}
	if diff := cmp.Diff(wantSvc, out.Service); diff != "" {
		t.Errorf("Service (-want +got):\n%s", diff)
	}
	wantSlices := []*discoveryv1.EndpointSlice{
		readySlice("edge-gateway-tcp-8443-15061-ipv4", "tcp-8443", corev1.ProtocolTCP, 15061, "10.0.0.1", "10.0.0.2"),
		readySlice("edge-gateway-udp-16384-30000-ipv4", "udp-16384", corev1.ProtocolUDP, 30000, "10.0.0.1", "10.0.0.2"),
	}
	if diff := cmp.Diff(wantSlices, out.Slices); diff != "" {
		t.Errorf("EndpointSlices (-want +got):\n%s", diff)
	}
	routeParent := func(acceptedMsg string) []gwv1.RouteParentStatus {
		return []gwv1.RouteParentStatus{{ParentRef: gwv1.ParentReference{Name: "edge"}, ControllerName: gatewayctl.ControllerName,
			Conditions: []metav1.Condition{
				cond("Accepted", metav1.ConditionTrue, "Accepted", acceptedMsg, 2),
				cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "all backends resolved", 2),
			}}}
	}
	wantRoutes := [][]gwv1.RouteParentStatus{routeParent("attached to listener signalling"), routeParent("attached to listener media")}
	if diff := cmp.Diff(wantRoutes, out.Routes); diff != "" {
		t.Errorf("route parents (-want +got):\n%s", diff)
	}
	listener := func(name string, kind gwv1.Kind, programmed metav1.Condition) gwv1.ListenerStatus {
		return gwv1.ListenerStatus{Name: gwv1.SectionName(name), SupportedKinds: []gwv1.RouteGroupKind{{Group: &group, Kind: kind}},
			AttachedRoutes: 1, Conditions: []metav1.Condition{
				cond("Accepted", metav1.ConditionTrue, "Accepted", "accepted", 3),
				cond("Conflicted", metav1.ConditionFalse, "NoConflicts", "no conflicts", 3),
				cond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "resolved", 3),
				programmed,
			}}
	}
	pending := cond("Programmed", metav1.ConditionFalse, "Pending", "Service edge-gateway has no address from Pier's pools yet", 3)
	wantStatus := gwv1.GatewayStatus{
		Conditions: []metav1.Condition{
			cond("Accepted", metav1.ConditionTrue, "Accepted", "accepted", 3),
			cond("Programmed", metav1.ConditionFalse, "AddressNotAssigned", "Service edge-gateway has no address from Pier's pools yet", 3),
		},
		Listeners: []gwv1.ListenerStatus{listener("signalling", "TCPRoute", pending), listener("media", "UDPRoute", pending)},
	}
	if diff := cmp.Diff(wantStatus, out.Status); diff != "" {
		t.Errorf("Gateway status before the address (-want +got):\n%s", diff)
	}

	// The allocator assigns the address: the Gateway is programmed.
	in.Service = out.Service.DeepCopy()
	in.Service.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.210"}}
	in.Gateway.Status = out.Status
	out = gatewayctl.Build(in)
	programmed := cond("Programmed", metav1.ConditionTrue, "Programmed", "programmed", 3)
	wantStatus = gwv1.GatewayStatus{
		Addresses: []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.IPAddressType), Value: "198.51.100.210"}},
		Conditions: []metav1.Condition{
			cond("Accepted", metav1.ConditionTrue, "Accepted", "accepted", 3),
			cond("Programmed", metav1.ConditionTrue, "Programmed", "Service edge-gateway: 198.51.100.210", 3),
		},
		Listeners: []gwv1.ListenerStatus{listener("signalling", "TCPRoute", programmed), listener("media", "UDPRoute", programmed)},
	}
	if diff := cmp.Diff(wantStatus, out.Status); diff != "" {
		t.Errorf("Gateway status with the address (-want +got):\n%s", diff)
	}
}

// summary is a condition as "Status Reason".
func summary(conds []metav1.Condition) map[string]string {
	out := map[string]string{}
	for _, c := range conds {
		out[c.Type] = string(c.Status) + " " + c.Reason
	}
	return out
}

type outcome struct {
	Gateway   map[string]string
	Listeners map[string]map[string]string
	Routes    []map[string]string // this Gateway's entry of each route
	Ports     []string            // the Service's ports; nil: no Service
	Backends  map[string][]string // slice name -> addresses
	Addresses string              // Service loadBalancerIPs annotation
	Families  []corev1.IPFamily
}

func summarize(out *gatewayctl.Output) outcome {
	o := outcome{Gateway: summary(out.Status.Conditions), Listeners: map[string]map[string]string{}}
	for _, l := range out.Status.Listeners {
		o.Listeners[string(l.Name)] = summary(l.Conditions)
		o.Listeners[string(l.Name)]["attached"] = string(rune('0' + l.AttachedRoutes))
	}
	for _, parents := range out.Routes {
		for _, p := range parents {
			if p.ControllerName == gatewayctl.ControllerName {
				o.Routes = append(o.Routes, summary(p.Conditions))
			}
		}
	}
	if out.Service != nil {
		o.Ports = []string{}
		for _, p := range out.Service.Spec.Ports {
			o.Ports = append(o.Ports, p.Name)
		}
		o.Addresses = out.Service.Annotations[v1alpha1.AnnotationLoadBalancerIPs]
		o.Families = out.Service.Spec.IPFamilies
	}
	if len(out.Slices) > 0 {
		o.Backends = map[string][]string{}
		for _, es := range out.Slices {
			for _, e := range es.Endpoints {
				o.Backends[es.Name] = append(o.Backends[es.Name], e.Addresses...)
			}
		}
	}
	return o
}

var (
	accepted   = map[string]string{"Accepted": "True Accepted", "ResolvedRefs": "True ResolvedRefs"}
	listenerOK = func(attached string) map[string]string {
		return map[string]string{"Accepted": "True Accepted", "Conflicted": "False NoConflicts", "ResolvedRefs": "True ResolvedRefs",
			"Programmed": "False Pending", "attached": attached}
	}
	gatewayOK = map[string]string{"Accepted": "True Accepted", "Programmed": "False AddressNotAssigned"}
)

func TestBuildCases(t *testing.T) {
	tcp := func(refs ...gwv1.BackendRef) gatewayctl.Route { return route(gatewayctl.KindTCPRoute, "sip", refs...) }
	tcpSlice := map[string][]string{"edge-gateway-tcp-8443-15061-ipv4": {"10.0.0.1", "10.0.0.2"}}
	for _, tc := range []struct {
		name string
		in   *gatewayctl.Input
		want outcome
	}{{
		name: "HTTP listener is refused, the TCP one served",
		in: input(gateway(func(g *gwv1.Gateway) {
			g.Spec.Listeners[1] = gwv1.Listener{Name: "web", Protocol: gwv1.HTTPProtocolType, Port: 80}
		}), tcp(backendRef("callserver", 5061))),
		want: outcome{
			Gateway: map[string]string{"Accepted": "True ListenersNotValid", "Programmed": "False AddressNotAssigned"},
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "web": {"Accepted": "False UnsupportedProtocol",
				"Conflicted": "False NoConflicts", "ResolvedRefs": "True ResolvedRefs", "Programmed": "False Invalid", "attached": "0"}},
			Routes: []map[string]string{accepted}, Ports: []string{"tcp-8443"}, Backends: tcpSlice,
		},
	}, {
		name: "listeners on one TCP port conflict; no listener left, no Service",
		in: input(gateway(func(g *gwv1.Gateway) {
			g.Spec.Listeners = []gwv1.Listener{{Name: "a", Protocol: gwv1.TCPProtocolType, Port: 443},
				{Name: "b", Protocol: gwv1.TLSProtocolType, Port: 443}}
		}), tcp(backendRef("callserver", 5061))),
		want: outcome{
			Gateway: map[string]string{"Accepted": "False ListenersNotValid", "Programmed": "False Invalid"},
			Listeners: map[string]map[string]string{
				"a": {"Accepted": "False ProtocolConflict", "Conflicted": "True ProtocolConflict", "ResolvedRefs": "True ResolvedRefs", "Programmed": "False Invalid", "attached": "0"},
				"b": {"Accepted": "False UnsupportedProtocol", "Conflicted": "True ProtocolConflict", "ResolvedRefs": "True ResolvedRefs", "Programmed": "False Invalid", "attached": "0"},
			},
			Routes: []map[string]string{{"Accepted": "False NotAllowedByListeners", "ResolvedRefs": "True ResolvedRefs"}},
		},
	}, {
		name: "TCP and UDP on one port do not conflict",
		in: input(gateway(func(g *gwv1.Gateway) { g.Spec.Listeners[1].Port = 8443 }),
			tcp(backendRef("callserver", 5061)), route(gatewayctl.KindUDPRoute, "rtp", backendRef("callserver", 20000))),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "media": listenerOK("1")},
			Routes:    []map[string]string{accepted, accepted}, Ports: []string{"tcp-8443", "udp-8443"},
			Backends: map[string][]string{"edge-gateway-tcp-8443-15061-ipv4": {"10.0.0.1", "10.0.0.2"},
				"edge-gateway-udp-8443-30000-ipv4": {"10.0.0.1", "10.0.0.2"}},
		},
	}, {
		name: "missing Service and missing port: BackendNotFound, the good backend still served",
		in:   input(gateway(), tcp(backendRef("nosuch", 5061), backendRef("callserver", 9999), backendRef("callserver", 5061))),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "media": listenerOK("0")},
			Routes:    []map[string]string{{"Accepted": "True Accepted", "ResolvedRefs": "False BackendNotFound"}},
			Ports:     []string{"tcp-8443", "udp-16384"}, Backends: tcpSlice,
		},
	}, {
		name: "backend of another kind: InvalidKind",
		in: input(gateway(), tcp(backendRef("callserver", 5061, func(r *gwv1.BackendRef) {
			r.Kind = ptr.To(gwv1.Kind("Relay"))
			r.Group = ptr.To(gwv1.Group("pier.dev"))
		}))),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "media": listenerOK("0")},
			Routes:    []map[string]string{{"Accepted": "True Accepted", "ResolvedRefs": "False InvalidKind"}},
			Ports:     []string{"tcp-8443", "udp-16384"},
		},
	}, {
		name: "backend in another namespace without a ReferenceGrant",
		in:   crossNamespace(nil),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "media": listenerOK("0")},
			Routes:    []map[string]string{{"Accepted": "True Accepted", "ResolvedRefs": "False RefNotPermitted"}},
			Ports:     []string{"tcp-8443", "udp-16384"},
		},
	}, {
		name: "backend in another namespace with a ReferenceGrant",
		in: crossNamespace(&gwv1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "media", Name: "calls"},
			Spec: gwv1.ReferenceGrantSpec{From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "TCPRoute", Namespace: "calls"}},
				To: []gwv1.ReferenceGrantTo{{Kind: "Service"}}}}),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "media": listenerOK("0")},
			Routes:    []map[string]string{accepted}, Ports: []string{"tcp-8443", "udp-16384"},
			Backends: map[string][]string{"edge-gateway-tcp-8443-15061-ipv4": {"10.0.1.1"}},
		},
	}, {
		name: "sectionName naming no listener: NoMatchingParent",
		in: input(gateway(), withParent(tcp(backendRef("callserver", 5061)), func(p *gwv1.ParentReference) {
			p.SectionName = ptr.To(gwv1.SectionName("nosuch"))
		})),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("0"), "media": listenerOK("0")},
			Routes:    []map[string]string{{"Accepted": "False NoMatchingParent", "ResolvedRefs": "True ResolvedRefs"}},
			Ports:     []string{"tcp-8443", "udp-16384"},
		},
	}, {
		name: "UDPRoute naming the TCP listener: NotAllowedByListeners",
		in: input(gateway(), withParent(route(gatewayctl.KindUDPRoute, "rtp", backendRef("callserver", 20000)), func(p *gwv1.ParentReference) {
			p.SectionName = ptr.To(gwv1.SectionName("signalling"))
		})),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("0"), "media": listenerOK("0")},
			Routes:    []map[string]string{{"Accepted": "False NotAllowedByListeners", "ResolvedRefs": "True ResolvedRefs"}},
			Ports:     []string{"tcp-8443", "udp-16384"},
		},
	}, {
		name: "route from another namespace, listener allows Same only",
		in: input(gateway(), func() gatewayctl.Route {
			r := withParent(tcp(backendRef("callserver", 5061)), func(p *gwv1.ParentReference) { p.Namespace = ptr.To(gwv1.Namespace("calls")) })
			r.Namespace = "other"
			return r
		}()),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("0"), "media": listenerOK("0")},
			Routes:    []map[string]string{{"Accepted": "False NotAllowedByListeners", "ResolvedRefs": "False BackendNotFound"}},
			Ports:     []string{"tcp-8443", "udp-16384"},
		},
	}, {
		name: "weight 0 backend adds nothing",
		in:   input(gateway(), tcp(backendRef("callserver", 5061, func(r *gwv1.BackendRef) { r.Weight = ptr.To[int32](0) }))),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("1"), "media": listenerOK("0")},
			Routes:    []map[string]string{accepted}, Ports: []string{"tcp-8443", "udp-16384"},
		},
	}, {
		name: "static addresses, one per family: dual-stack Service requesting them",
		in: input(gateway(func(g *gwv1.Gateway) {
			g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "2001:db8:100::210"}, {Type: ptr.To(gwv1.IPAddressType), Value: "198.51.100.210"}}
		})),
		want: outcome{
			Gateway:   gatewayOK,
			Listeners: map[string]map[string]string{"signalling": listenerOK("0"), "media": listenerOK("0")},
			Ports:     []string{"tcp-8443", "udp-16384"},
			Addresses: "2001:db8:100::210,198.51.100.210", Families: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
		},
	}, {
		name: "two IPv4 addresses: UnsupportedAddress, no Service",
		in: input(gateway(func(g *gwv1.Gateway) {
			g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "198.51.100.210"}, {Value: "198.51.100.211"}}
		})),
		want: outcome{
			Gateway: map[string]string{"Accepted": "False UnsupportedAddress", "Programmed": "False Invalid"},
			Listeners: map[string]map[string]string{
				"signalling": {"Accepted": "False Pending", "Conflicted": "False NoConflicts", "ResolvedRefs": "True ResolvedRefs", "Programmed": "False Invalid", "attached": "0"},
				"media":      {"Accepted": "False Pending", "Conflicted": "False NoConflicts", "ResolvedRefs": "True ResolvedRefs", "Programmed": "False Invalid", "attached": "0"},
			},
		},
	}, {
		name: "hostname address: UnsupportedAddress",
		in: input(gateway(func(g *gwv1.Gateway) {
			g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.HostnameAddressType), Value: "calls.example"}}
			g.Spec.Listeners = g.Spec.Listeners[:1]
		})),
		want: outcome{
			Gateway: map[string]string{"Accepted": "False UnsupportedAddress", "Programmed": "False Invalid"},
			Listeners: map[string]map[string]string{
				"signalling": {"Accepted": "False Pending", "Conflicted": "False NoConflicts", "ResolvedRefs": "True ResolvedRefs", "Programmed": "False Invalid", "attached": "0"},
			},
		},
	}, {
		name: "allowedRoutes naming a kind the listener cannot serve",
		in: input(gateway(func(g *gwv1.Gateway) {
			g.Spec.Listeners = g.Spec.Listeners[:1]
			g.Spec.Listeners[0].AllowedRoutes = &gwv1.AllowedRoutes{Kinds: []gwv1.RouteGroupKind{{Kind: "HTTPRoute"}, {Kind: "TCPRoute"}}}
		}), tcp(backendRef("callserver", 5061))),
		want: outcome{
			Gateway: gatewayOK,
			Listeners: map[string]map[string]string{"signalling": {"Accepted": "True Accepted", "Conflicted": "False NoConflicts",
				"ResolvedRefs": "False InvalidRouteKinds", "Programmed": "False Pending", "attached": "1"}},
			Routes: []map[string]string{accepted}, Ports: []string{"tcp-8443"}, Backends: tcpSlice,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarize(gatewayctl.Build(tc.in))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func withParent(r gatewayctl.Route, mutate func(*gwv1.ParentReference)) gatewayctl.Route {
	mutate(&r.ParentRefs[0])
	return r
}

// crossNamespace routes to a Service in namespace media, with grant when
// not nil.
func crossNamespace(grant *gwv1.ReferenceGrant) *gatewayctl.Input {
	in := input(gateway(), route(gatewayctl.KindTCPRoute, "sip", backendRef("callserver", 5061, func(r *gwv1.BackendRef) {
		r.Namespace = ptr.To(gwv1.Namespace("media"))
	})))
	key := types.NamespacedName{Namespace: "media", Name: "callserver"}
	in.Services[key] = backendService("media", "callserver")
	in.Slices[key] = []*discoveryv1.EndpointSlice{backendSlice("media", "callserver", map[string]bool{"10.0.1.1": true})}
	if grant != nil {
		in.Grants = append(in.Grants, grant)
	}
	return in
}

// TestBuildKeepsOtherParents checks that status entries of other
// controllers and other Gateways stay, and Pier's stale entry for a
// parentRef the route no longer has goes.
func TestBuildKeepsOtherParents(t *testing.T) {
	r := route(gatewayctl.KindTCPRoute, "sip", backendRef("callserver", 5061))
	other := gwv1.RouteParentStatus{ParentRef: gwv1.ParentReference{Name: "edge"}, ControllerName: "example.net/other"}
	otherGateway := gwv1.RouteParentStatus{ParentRef: gwv1.ParentReference{Name: "core"}, ControllerName: gatewayctl.ControllerName}
	stale := gwv1.RouteParentStatus{ParentRef: gwv1.ParentReference{Name: "edge", SectionName: ptr.To(gwv1.SectionName("media"))},
		ControllerName: gatewayctl.ControllerName}
	r.Status.Parents = []gwv1.RouteParentStatus{other, otherGateway, stale}
	out := gatewayctl.Build(input(gateway(), r))
	var got []string
	for _, p := range out.Routes[0] {
		got = append(got, string(p.ControllerName)+" "+string(p.ParentRef.Name)+" "+string(ptr.Deref(p.ParentRef.SectionName, "")))
	}
	want := []string{"example.net/other edge ", "pier.dev/gateway-controller core ", "pier.dev/gateway-controller edge "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parents (-want +got):\n%s", diff)
	}
}

// TestBuildKeepsTransitionTimes checks that a condition whose status did
// not change keeps its lastTransitionTime.
func TestBuildKeepsTransitionTimes(t *testing.T) {
	in := input(gateway(), route(gatewayctl.KindTCPRoute, "sip", backendRef("callserver", 5061)))
	first := gatewayctl.Build(in)
	in.Gateway.Status = first.Status
	in.Routes[0].Status.Parents = first.Routes[0]
	in.Now = metav1.NewTime(now.Add(time.Minute))
	second := gatewayctl.Build(in)
	if diff := cmp.Diff(first.Status, second.Status); diff != "" {
		t.Errorf("Gateway status changed on a second look (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(first.Routes, second.Routes); diff != "" {
		t.Errorf("route status changed on a second look (-first +second):\n%s", diff)
	}
}

// TestBuildAddressProblem: the owned Service's failed assignment becomes
// the Gateway's Programmed reason, AddressNotUsable only for an address
// the Gateway asked for.
func TestBuildAddressProblem(t *testing.T) {
	failed := func(reason, msg string) *corev1.Service {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge-gateway"}}
		svc.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionAddressAssigned, Status: metav1.ConditionFalse, Reason: reason, Message: msg}}
		return svc
	}
	static := func(g *gwv1.Gateway) { g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "192.0.2.99"}} }
	for _, tc := range []struct {
		name      string
		gw        *gwv1.Gateway
		svc       *corev1.Service
		want, msg string
	}{
		{"no Service yet", gateway(), nil, "AddressNotAssigned", "Service edge-gateway has no address from Pier's pools yet"},
		{"not assigned yet", gateway(), &corev1.Service{}, "AddressNotAssigned", "Service edge-gateway has no address from Pier's pools yet"},
		{"requested address outside every pool", gateway(static), failed("NotInAnyPool", "allocation failed: 192.0.2.99 is in no pool"),
			"AddressNotUsable", "Service edge-gateway: NotInAnyPool: allocation failed: 192.0.2.99 is in no pool"},
		{"requested address held by another Service", gateway(static), failed("AddressInUse", "allocation failed: in use"),
			"AddressNotUsable", "Service edge-gateway: AddressInUse: allocation failed: in use"},
		{"pool exhausted", gateway(static), failed("PoolExhausted", "allocation failed: no free address"),
			"AddressNotAssigned", "Service edge-gateway: PoolExhausted: allocation failed: no free address"},
		{"no address asked for", gateway(), failed("NotInAnyPool", "allocation failed: x"),
			"AddressNotAssigned", "Service edge-gateway: NotInAnyPool: allocation failed: x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(tc.gw)
			in.Service = tc.svc
			c := apimeta.FindStatusCondition(gatewayctl.Build(in).Status.Conditions, "Programmed")
			if c == nil {
				t.Fatal("no Programmed condition")
			}
			if diff := cmp.Diff([]string{"False", tc.want, tc.msg}, []string{string(c.Status), c.Reason, c.Message}); diff != "" {
				t.Errorf("Programmed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildOldestRouteServed: two TCPRoutes on one listener are both
// accepted and counted, but only the older one's backends are served,
// whatever the input order, on both data paths.
func TestBuildOldestRouteServed(t *testing.T) {
	older := route(gatewayctl.KindTCPRoute, "older", backendRef("callserver", 5061))
	older.Created = metav1.NewTime(now.Add(-time.Minute))
	newer := route(gatewayctl.KindTCPRoute, "newer", backendRef("other", 5061))
	newer.Created = now
	for _, tc := range []struct {
		name   string
		routes []gatewayctl.Route
		params config.GatewayParameters
	}{
		{"older first", []gatewayctl.Route{older, newer}, config.GatewayParameters{}},
		{"newer first", []gatewayctl.Route{newer, older}, config.GatewayParameters{}},
		{"relay data path", []gatewayctl.Route{newer, older}, config.GatewayParameters{DataPath: config.GatewayRelay}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(gateway(func(g *gwv1.Gateway) { g.Spec.Listeners = g.Spec.Listeners[:1] }), tc.routes...)
			key := types.NamespacedName{Namespace: "calls", Name: "other"}
			in.Services[key] = backendService("calls", "other")
			in.Slices[key] = []*discoveryv1.EndpointSlice{backendSlice("calls", "other", map[string]bool{"10.0.9.9": true})}
			in.Params = tc.params
			out := gatewayctl.Build(in)
			var got []string
			for _, es := range out.Slices {
				for _, e := range es.Endpoints {
					got = append(got, e.Addresses...)
				}
			}
			slices.Sort(got)
			if diff := cmp.Diff([]string{"10.0.0.1", "10.0.0.2"}, got); diff != "" {
				t.Errorf("served endpoints (-want +got):\n%s", diff)
			}
			if n := out.Status.Listeners[0].AttachedRoutes; n != 2 {
				t.Errorf("attachedRoutes %d, want 2", n)
			}
			for i, parents := range out.Routes {
				if got := summary(parents[0].Conditions)["Accepted"]; got != "True Accepted" {
					t.Errorf("route %s: Accepted %s", tc.routes[i].Name, got)
				}
			}
		})
	}
}
