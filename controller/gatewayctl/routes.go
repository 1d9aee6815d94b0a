package gatewayctl

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Route is a TCPRoute or a UDPRoute, reduced to what the mapping needs.
type Route struct {
	Kind       gwv1.Kind // KindTCPRoute or KindUDPRoute
	Namespace  string
	Name       string
	Generation int64
	// Created orders routes that share a listener: the oldest is served.
	Created metav1.Time
	// ResourceVersion is the version the status is written on.
	ResourceVersion string
	ParentRefs      []gwv1.ParentReference
	// BackendRefs of all rules: an L4 route has no matches, so rules only
	// add backends.
	BackendRefs []gwv1.BackendRef
	Status      gwv1.RouteStatus
}

// TCPRoute and UDPRoute reduce the two kinds to a Route.
func TCPRoute(r *gwv1.TCPRoute) Route {
	out := Route{Kind: KindTCPRoute, Namespace: r.Namespace, Name: r.Name, Generation: r.Generation, Created: r.CreationTimestamp,
		ResourceVersion: r.ResourceVersion, ParentRefs: r.Spec.ParentRefs, Status: r.Status.RouteStatus}
	for _, rule := range r.Spec.Rules {
		out.BackendRefs = append(out.BackendRefs, rule.BackendRefs...)
	}
	return out
}

func UDPRoute(r *gwv1.UDPRoute) Route {
	out := Route{Kind: KindUDPRoute, Namespace: r.Namespace, Name: r.Name, Generation: r.Generation, Created: r.CreationTimestamp,
		ResourceVersion: r.ResourceVersion, ParentRefs: r.Spec.ParentRefs, Status: r.Status.RouteStatus}
	for _, rule := range r.Spec.Rules {
		out.BackendRefs = append(out.BackendRefs, rule.BackendRefs...)
	}
	return out
}

// byAge orders the indexes of routes oldest first (then by key), the
// order in which they bind to listeners.
func byAge(routes []Route) []int {
	idx := make([]int, len(routes))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		ra, rb := &routes[a], &routes[b]
		if c := ra.Created.Compare(rb.Created.Time); c != 0 {
			return c
		}
		return strings.Compare(ra.Key(), rb.Key())
	})
	return idx
}

// Key is the route's kind, namespace and name.
func (r *Route) Key() string { return string(r.Kind) + " " + r.Namespace + "/" + r.Name }

func (r *Route) protocol() corev1.Protocol {
	if r.Kind == KindUDPRoute {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

// RefersTo reports whether ref names the Gateway ns/name.
func RefersTo(ref gwv1.ParentReference, routeNS, ns, name string) bool {
	if ref.Group != nil && *ref.Group != gwv1.GroupName || ref.Kind != nil && *ref.Kind != "Gateway" {
		return false
	}
	refNS := routeNS
	if ref.Namespace != nil {
		refNS = string(*ref.Namespace)
	}
	return refNS == ns && string(ref.Name) == name
}

// BackendKey is the Service a backendRef names, "" for another kind.
func BackendKey(ref gwv1.BackendObjectReference, routeNS string) types.NamespacedName {
	ns := routeNS
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return types.NamespacedName{Namespace: ns, Name: string(ref.Name)}
}

func isService(ref gwv1.BackendObjectReference) bool {
	return (ref.Group == nil || *ref.Group == "") && (ref.Kind == nil || *ref.Kind == "Service")
}

// attach matches one parentRef to the listeners: the Accepted condition
// and the listeners it attaches to.
func attach(r *Route, ref gwv1.ParentReference, ls []*listener, in *Input) (metav1.Condition, []*listener) {
	var named, admitted []*listener
	for _, l := range ls {
		if ref.SectionName != nil && *ref.SectionName != l.spec.Name || ref.Port != nil && *ref.Port != l.spec.Port {
			continue
		}
		named = append(named, l)
		if l.admits(r.Kind, r.Namespace, in.NamespaceLabels[r.Namespace], in.Gateway.Namespace) {
			admitted = append(admitted, l)
		}
	}
	cond := metav1.Condition{Type: string(gwv1.RouteConditionAccepted)}
	switch {
	case len(named) == 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(gwv1.RouteReasonNoMatchingParent)
		cond.Message = "no listener of the Gateway matches the parentRef's sectionName and port"
	case len(admitted) == 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(gwv1.RouteReasonNotAllowedByListeners)
		cond.Message = fmt.Sprintf("no valid listener of the Gateway allows a %s from namespace %s", r.Kind, r.Namespace)
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, string(gwv1.RouteReasonAccepted)
		names := make([]string, len(admitted))
		for i, l := range admitted {
			names[i] = string(l.spec.Name)
		}
		cond.Message = "attached to listener " + strings.Join(names, ", ")
	}
	return cond, admitted
}

// endpoint is one ready backend address and its port, with its share of
// the route's flows: its backendRef's weight over the ref's endpoints.
type endpoint struct {
	family discoveryv1.AddressType
	addr   string
	port   int32
	weight float64
}

// resolve checks the route's backendRefs and collects the ready endpoints
// of those that resolve: the ResolvedRefs condition and the endpoints.
func resolve(r *Route, in *Input) (metav1.Condition, []endpoint) {
	var eps []endpoint
	var reason gwv1.RouteConditionReason
	var problems []string
	fail := func(why gwv1.RouteConditionReason, format string, args ...any) {
		if reason == "" {
			reason = why
		}
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	for _, ref := range r.BackendRefs {
		key := BackendKey(ref.BackendObjectReference, r.Namespace)
		switch {
		case !isService(ref.BackendObjectReference):
			fail(gwv1.RouteReasonInvalidKind, "backend %s: only Services are supported", ref.Name)
		case key.Namespace != r.Namespace && !granted(in.Grants, r, key):
			fail(gwv1.RouteReasonRefNotPermitted, "backend %s: no ReferenceGrant in %s allows it", key, key.Namespace)
		case in.Services[key] == nil:
			fail(gwv1.RouteReasonBackendNotFound, "backend %s: Service not found", key)
		default:
			sp := servicePort(in.Services[key], ref.Port, r.protocol())
			if sp == nil {
				fail(gwv1.RouteReasonBackendNotFound, "backend %s: Service has no %s port %d", key, r.protocol(), ptrOr(ref.Port))
				continue
			}
			w := int32(1)
			if ref.Weight != nil {
				w = *ref.Weight
			}
			if w <= 0 {
				continue // weight 0: no flows
			}
			ready := readyEndpoints(in.Slices[key], sp)
			for i := range ready {
				ready[i].weight = float64(w) / float64(len(ready))
			}
			eps = append(eps, ready...)
		}
	}
	cond := metav1.Condition{Type: string(gwv1.RouteConditionResolvedRefs),
		Status: metav1.ConditionTrue, Reason: string(gwv1.RouteReasonResolvedRefs), Message: "all backends resolved"}
	if reason != "" {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, string(reason), strings.Join(problems, "; ")
	}
	return cond, eps
}

func ptrOr(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func servicePort(svc *corev1.Service, port *int32, proto corev1.Protocol) *corev1.ServicePort {
	if port == nil {
		return nil
	}
	for i, p := range svc.Spec.Ports {
		if p.Port == *port && p.Protocol == proto {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

// readyEndpoints are the ready endpoints of the slices for the Service
// port sp (slice ports carry the Service port's name), with their target
// ports. An endpoint without a ready condition is ready, as for
// kube-proxy.
func readyEndpoints(slices []*discoveryv1.EndpointSlice, sp *corev1.ServicePort) []endpoint {
	var out []endpoint
	for _, es := range slices {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, p := range es.Ports {
			if p.Port == nil || ptrStr(p.Name) != sp.Name || ptrProto(p.Protocol) != sp.Protocol {
				continue
			}
			for _, e := range es.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready || len(e.Addresses) == 0 {
					continue
				}
				out = append(out, endpoint{family: es.AddressType, addr: e.Addresses[0], port: *p.Port})
			}
		}
	}
	return out
}

func ptrStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ptrProto(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return corev1.ProtocolTCP
	}
	return *p
}

// granted reports whether a ReferenceGrant in the backend's namespace lets
// the route refer to the Service.
func granted(grants []*gwv1.ReferenceGrant, r *Route, svc types.NamespacedName) bool {
	for _, g := range grants {
		if g.Namespace != svc.Namespace {
			continue
		}
		from, to := false, false
		for _, f := range g.Spec.From {
			from = from || f.Group == gwv1.GroupName && f.Kind == r.Kind && string(f.Namespace) == r.Namespace
		}
		for _, t := range g.Spec.To {
			to = to || t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == svc.Name)
		}
		if from && to {
			return true
		}
	}
	return false
}
