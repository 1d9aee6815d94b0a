package gatewayctl

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// ControllerName is the GatewayClass spec.controllerName Pier serves.
const ControllerName gwv1.GatewayController = "pier.dev/gateway-controller"

// Labels and annotations of what the controller owns.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByPier  = "pier-controller"
	// SliceManager is the endpointslice.kubernetes.io/managed-by value of
	// the EndpointSlices of a Gateway's Service.
	SliceManager = "gateway-controller.pier.dev"
	// annotationCopied lists the Service annotations set from the Gateway,
	// so one removed there is removed from the Service.
	annotationCopied = "pier.dev/gateway-annotations"
)

// copiedAnnotations are the Gateway annotations passed on to its Service:
// Pier's Service annotations that choose how it gets its address.
var copiedAnnotations = []string{v1alpha1.AnnotationAddressPool, v1alpha1.AnnotationAllowSharedIP}

// ServiceName is the name of the Service owned for Gateway name.
func ServiceName(gateway string) string { return gateway + serviceSuffix }

const serviceSuffix = "-gateway"

// Input is what one reconcile of a Gateway reads.
type Input struct {
	Gateway *gwv1.Gateway
	// ClassProblem, when set, is why the Gateway's class is not accepted:
	// the Gateway is refused and gets no Service.
	ClassProblem string
	// Routes are the TCPRoutes and UDPRoutes that name the Gateway as a
	// parent, or did (status entries of Pier's to remove).
	Routes []Route
	// Services and Slices are the routes' backend Services that exist and
	// their EndpointSlices.
	Services map[types.NamespacedName]*corev1.Service
	Slices   map[types.NamespacedName][]*discoveryv1.EndpointSlice
	// Grants are the ReferenceGrants of the backends' namespaces.
	Grants []*gwv1.ReferenceGrant
	// NamespaceLabels are the labels of the routes' namespaces.
	NamespaceLabels map[string]map[string]string
	// Service is the owned Service as it is now (nil: none yet), and
	// ServiceProblem why it could not be written ("" when it could).
	Service        *corev1.Service
	ServiceProblem string
	// Params are the class's parameters: the data path.
	Params config.GatewayParameters
	// Relay is the owned Relay as it is now (Relay data path; nil: none
	// yet), and RelayProblem why it could not be written.
	Relay        *v1alpha1.Relay
	RelayProblem string
	Now          metav1.Time
}

// Output is what the Gateway should have.
type Output struct {
	// Service is the owned Service; nil: there should be none. With the
	// Relay data path it is headless, its slices the Relay's backends.
	Service *corev1.Service
	Slices  []*discoveryv1.EndpointSlice
	// Relay is the owned Relay (Relay data path); nil: there should be
	// none.
	Relay  *v1alpha1.Relay
	Status gwv1.GatewayStatus
	// Routes are the new status.parents of each input route, in input
	// order: the entries of other parents and controllers kept, Pier's
	// for this Gateway replaced.
	Routes [][]gwv1.RouteParentStatus
}

// Build maps a Gateway, its routes and their backends to the owned
// Service, its EndpointSlices and the statuses.
func Build(in *Input) *Output {
	gw := in.Gateway
	ls := judgeListeners(gw)
	addrs, addrProblem := requestedAddrs(gw)
	accepted := gatewayAccepted(in, ls, addrProblem)
	out := &Output{}
	if accepted.Status != metav1.ConditionTrue {
		// A refused Gateway attaches no route.
		ls = refuseAll(ls, accepted.Message)
	}
	byListener := map[*listener][]endpoint{}
	out.Routes = make([][]gwv1.RouteParentStatus, len(in.Routes))
	for _, i := range byAge(in.Routes) {
		out.Routes[i] = routeParents(&in.Routes[i], ls, in, byListener)
	}
	relayProblem := ""
	switch {
	case accepted.Status != metav1.ConditionTrue:
	case in.Params.DataPath == config.GatewayRelay:
		out.Service = backendService(gw, ls)
		out.Slices = weightedSlices(gw, out.Service, ls, byListener)
		out.Relay, relayProblem = desiredRelay(gw, ls, addrs, in.Params)
	default:
		out.Service = desiredService(gw, ls, addrs)
		out.Slices = desiredSlices(gw, out.Service, ls, byListener)
	}
	out.Status = gatewayStatus(in, ls, accepted, relayProblem)
	return out
}

// refuseAll marks every listener invalid because the Gateway is.
func refuseAll(ls []*listener, why string) []*listener {
	for _, l := range ls {
		if l.valid() {
			l.reason, l.message = string(gwv1.ListenerReasonPending), "the Gateway is not accepted: "+why
		}
	}
	return ls
}

// requestedAddrs reads spec.addresses: IP addresses, at most one per
// family (what a Service can request). Entries without a value ask for
// any address.
func requestedAddrs(gw *gwv1.Gateway) ([]netip.Addr, string) {
	var out []netip.Addr
	for i, a := range gw.Spec.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType {
			return nil, fmt.Sprintf("spec.addresses[%d]: type %s is not supported, only IPAddress", i, *a.Type)
		}
		if a.Value == "" {
			continue
		}
		ip, err := netip.ParseAddr(a.Value)
		if err != nil {
			return nil, fmt.Sprintf("spec.addresses[%d]: %q is not an IP address", i, a.Value)
		}
		ip = ip.Unmap()
		if slices.ContainsFunc(out, func(o netip.Addr) bool { return o.Is4() == ip.Is4() }) {
			return nil, fmt.Sprintf("spec.addresses[%d]: one address per IP family is supported", i)
		}
		out = append(out, ip)
	}
	return out, ""
}

// gatewayAccepted is the Gateway's Accepted condition.
func gatewayAccepted(in *Input, ls []*listener, addrProblem string) metav1.Condition {
	c := metav1.Condition{Type: string(gwv1.GatewayConditionAccepted), Status: metav1.ConditionFalse}
	valid := 0
	for _, l := range ls {
		if l.valid() {
			valid++
		}
	}
	switch {
	case in.ClassProblem != "":
		c.Reason, c.Message = string(gwv1.GatewayReasonInvalidParameters), in.ClassProblem
	case in.Gateway.Spec.Infrastructure != nil && in.Gateway.Spec.Infrastructure.ParametersRef != nil:
		c.Reason, c.Message = string(gwv1.GatewayReasonInvalidParameters), "spec.infrastructure.parametersRef is not supported"
	case addrProblem != "":
		c.Reason, c.Message = string(gwv1.GatewayReasonUnsupportedAddress), addrProblem
	case valid == 0:
		c.Reason, c.Message = string(gwv1.GatewayReasonListenersNotValid), "no listener can be served"
	case valid < len(ls):
		c.Status, c.Reason = metav1.ConditionTrue, string(gwv1.GatewayReasonListenersNotValid)
		c.Message = fmt.Sprintf("%d of %d listeners can be served; see status.listeners", valid, len(ls))
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, string(gwv1.GatewayReasonAccepted), "accepted"
	}
	return c
}

// routeParents attaches the route to this Gateway's listeners and returns
// its new status.parents; the endpoints of the first route accepted on a
// listener are added to byListener (Build takes routes oldest first).
func routeParents(r *Route, ls []*listener, in *Input, byListener map[*listener][]endpoint) []gwv1.RouteParentStatus {
	gw := in.Gateway
	var out []gwv1.RouteParentStatus
	for _, p := range r.Status.Parents {
		if p.ControllerName != ControllerName || !RefersTo(p.ParentRef, r.Namespace, gw.Namespace, gw.Name) {
			out = append(out, p)
		}
	}
	var resolved *metav1.Condition
	var eps []endpoint
	for _, ref := range r.ParentRefs {
		if !RefersTo(ref, r.Namespace, gw.Namespace, gw.Name) {
			continue
		}
		accepted, attached := attach(r, ref, ls, in)
		if resolved == nil {
			c, e := resolve(r, in)
			resolved, eps = &c, e
		}
		for _, l := range attached {
			// An L4 listener cannot tell routes apart: the oldest
			// attached route is served, the others are counted only
			// (the Gateway API's conflict rule).
			l.attached++
			if l.servedBy == "" {
				l.servedBy = r.Key()
				byListener[l] = append(byListener[l], eps...)
			}
		}
		ps := gwv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName,
			Conditions: previousConditions(r.Status.Parents, ref)}
		setCondition(&ps.Conditions, accepted, r.Generation, in.Now)
		setCondition(&ps.Conditions, *resolved, r.Generation, in.Now)
		if c, uneven := weightsCondition(in, eps); uneven {
			setCondition(&ps.Conditions, c, r.Generation, in.Now)
		} else {
			apimeta.RemoveStatusCondition(&ps.Conditions, ConditionWeightsHonored)
		}
		out = append(out, ps)
	}
	return out
}

func previousConditions(parents []gwv1.RouteParentStatus, ref gwv1.ParentReference) []metav1.Condition {
	for _, p := range parents {
		if p.ControllerName == ControllerName && parentRefEqual(p.ParentRef, ref) {
			return slices.Clone(p.Conditions)
		}
	}
	return nil
}

func parentRefEqual(a, b gwv1.ParentReference) bool {
	return ptr.Equal(a.Group, b.Group) && ptr.Equal(a.Kind, b.Kind) && ptr.Equal(a.Namespace, b.Namespace) &&
		a.Name == b.Name && ptr.Equal(a.SectionName, b.SectionName) && ptr.Equal(a.Port, b.Port)
}

// setCondition sets c with the generation, keeping the transition time
// when the status did not change.
func setCondition(conds *[]metav1.Condition, c metav1.Condition, gen int64, now metav1.Time) {
	c.ObservedGeneration, c.LastTransitionTime = gen, now
	apimeta.SetStatusCondition(conds, c)
}

// desiredService is the Service owned for the Gateway: one port per
// listener that can be served.
func desiredService(gw *gwv1.Gateway, ls []*listener, addrs []netip.Addr) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: ownedMeta(gw, ServiceName(gw.Name)),
		Spec: corev1.ServiceSpec{
			Type:              corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass: ptr.To(v1alpha1.LoadBalancerClass),
		},
	}
	setAnnotations(svc, gw, addrs)
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, v := range inf.Labels {
			if _, taken := svc.Labels[string(k)]; !taken {
				svc.Labels[string(k)] = string(v)
			}
		}
	}
	svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = families(addrs)
	svc.Spec.Ports = servicePorts(ls)
	return svc
}

// ownedMeta is the metadata of an object owned for the Gateway: its
// namespace, name, Pier's and the Gateway API's labels, and the Gateway
// as controlling owner.
func ownedMeta(gw *gwv1.Gateway, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: gw.Namespace,
		Name:      name,
		Labels: map[string]string{LabelManagedBy: ManagedByPier, gwv1.GatewayNameLabelKey: gw.Name,
			gwv1.GatewayClassNameLabelKey: string(gw.Spec.GatewayClassName)},
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(gw, gwv1.SchemeGroupVersion.WithKind("Gateway"))},
	}
}

// families are the IP families of the requested addresses, in their
// order, and the policy they need (dual-stack for two).
func families(addrs []netip.Addr) ([]corev1.IPFamily, *corev1.IPFamilyPolicy) {
	var out []corev1.IPFamily
	for _, a := range addrs {
		fam := corev1.IPv4Protocol
		if a.Is6() {
			fam = corev1.IPv6Protocol
		}
		out = append(out, fam)
	}
	if len(addrs) > 1 {
		return out, ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	}
	return out, ptr.To(corev1.IPFamilyPolicySingleStack)
}

// servicePorts are a Service's ports: one per listener that can be
// served.
func servicePorts(ls []*listener) []corev1.ServicePort {
	var out []corev1.ServicePort
	for _, l := range ls {
		if l.valid() {
			out = append(out, corev1.ServicePort{Name: l.portName(),
				Protocol: corev1.Protocol(transport(l.spec.Protocol)), Port: l.spec.Port})
		}
	}
	return out
}

// setAnnotations sets the requested addresses and the Gateway's copied
// and infrastructure annotations, and records their keys.
func setAnnotations(svc *corev1.Service, gw *gwv1.Gateway, addrs []netip.Addr) {
	a := addressAnnotations(gw, addrs)
	if len(a) == 0 {
		return
	}
	a[annotationCopied] = strings.Join(slices.Sorted(maps.Keys(a)), ",")
	svc.Annotations = a
}

// addressAnnotations are the Service annotations that choose the
// Gateway's addresses: the requested addresses and the Gateway's copied
// and infrastructure annotations.
func addressAnnotations(gw *gwv1.Gateway, addrs []netip.Addr) map[string]string {
	a := map[string]string{}
	for _, k := range copiedAnnotations {
		if v, ok := gw.Annotations[k]; ok {
			a[k] = v
		}
	}
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, v := range inf.Annotations {
			a[string(k)] = string(v)
		}
	}
	if len(addrs) > 0 {
		s := make([]string, len(addrs))
		for i, ip := range addrs {
			s[i] = ip.String()
		}
		a[v1alpha1.AnnotationLoadBalancerIPs] = strings.Join(s, ",")
	}
	return a
}

// desiredSlices are the Service's EndpointSlices: for each listener, port
// and address family, the attached routes' ready backend endpoints on
// one target port.
func desiredSlices(gw *gwv1.Gateway, svc *corev1.Service, ls []*listener, byListener map[*listener][]endpoint) []*discoveryv1.EndpointSlice {
	type key struct {
		port   string
		proto  corev1.Protocol
		family discoveryv1.AddressType
		target int32
	}
	groups := map[key]map[string]bool{}
	for _, l := range ls {
		for _, e := range byListener[l] {
			k := key{l.portName(), corev1.Protocol(transport(l.spec.Protocol)), e.family, e.port}
			if groups[k] == nil {
				groups[k] = map[string]bool{}
			}
			groups[k][e.addr] = true
		}
	}
	var out []*discoveryv1.EndpointSlice
	for k, addrs := range groups {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: svc.Namespace,
				Name:      fmt.Sprintf("%s-%s-%d-%s", svc.Name, k.port, k.target, strings.ToLower(string(k.family))),
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: SliceManager,
					LabelManagedBy: ManagedByPier, gwv1.GatewayNameLabelKey: gw.Name},
				OwnerReferences: svc.OwnerReferences,
			},
			AddressType: k.family,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(k.port), Protocol: ptr.To(k.proto), Port: ptr.To(k.target)}},
		}
		for _, a := range slices.Sorted(maps.Keys(addrs)) {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
		}
		out = append(out, es)
	}
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
