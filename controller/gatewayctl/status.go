package gatewayctl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// gatewayStatus is the Gateway's new status: addresses from the owned
// Service's ingress, Accepted and Programmed, and each listener's.
func gatewayStatus(in *Input, ls []*listener, accepted metav1.Condition, relayProblem string) gwv1.GatewayStatus {
	gw := in.Gateway
	st := gwv1.GatewayStatus{Conditions: slices.Clone(gw.Status.Conditions)}
	gen := gw.Generation
	programmed := gatewayProgrammed(in, accepted, relayProblem)
	if programmed.Status == metav1.ConditionTrue {
		ips, _ := addresses(in)
		for _, ip := range ips {
			st.Addresses = append(st.Addresses, gwv1.GatewayStatusAddress{Type: ptr.To(gwv1.IPAddressType), Value: ip})
		}
	}
	setCondition(&st.Conditions, accepted, gen, in.Now)
	setCondition(&st.Conditions, programmed, gen, in.Now)
	for _, l := range ls {
		st.Listeners = append(st.Listeners, listenerStatus(gw, l, programmed, in.Now))
	}
	return st
}

// gatewayProgrammed is the Programmed condition: true once the Service
// (kube-proxy data path) or the Relay (relay data path) has its
// addresses.
func gatewayProgrammed(in *Input, accepted metav1.Condition, relayProblem string) metav1.Condition {
	c := metav1.Condition{Type: string(gwv1.GatewayConditionProgrammed), Status: metav1.ConditionFalse}
	ips, holder := addresses(in)
	switch {
	case accepted.Status != metav1.ConditionTrue:
		c.Reason, c.Message = string(gwv1.GatewayReasonInvalid), "the Gateway is not accepted"
	case in.ServiceProblem != "":
		c.Reason, c.Message = string(gwv1.GatewayReasonNoResources), in.ServiceProblem
	case relayProblem != "" || in.RelayProblem != "":
		c.Reason, c.Message = string(gwv1.GatewayReasonNoResources), cmp.Or(relayProblem, in.RelayProblem)
	case len(ips) == 0:
		c.Reason, c.Message = addressProblem(in, holder)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed)
		c.Message = fmt.Sprintf("%s: %s", holder, strings.Join(ips, ", "))
		if in.Relay != nil {
			c.Message += fmt.Sprintf(" (%d relays ready)", in.Relay.Status.ReadyRelays)
		}
	}
	return c
}

// unusableReasons are the Service's assignment failures that say a
// requested address cannot be used, as opposed to none being free.
var unusableReasons = []string{"NotInAnyPool", "AddressNotInPool", "AddressInUse", "SharingConflict"}

// addressProblem says why the Gateway has no address yet, from the owned
// Service's ConditionAddressAssigned (kube-proxy path; holder names what
// holds the addresses): AddressNotUsable when an address of
// spec.addresses cannot be used (outside every pool, held by another
// Service), else AddressNotAssigned.
func addressProblem(in *Input, holder string) (reason, msg string) {
	var c *metav1.Condition
	if in.Params.DataPath != config.GatewayRelay && in.Service != nil {
		c = apimeta.FindStatusCondition(in.Service.Status.Conditions, v1alpha1.ConditionAddressAssigned)
	}
	if c == nil || c.Status != metav1.ConditionFalse {
		return string(gwv1.GatewayReasonAddressNotAssigned), holder + " has no address from Pier's pools yet"
	}
	if slices.Contains(unusableReasons, c.Reason) && slices.ContainsFunc(in.Gateway.Spec.Addresses, func(a gwv1.GatewaySpecAddress) bool { return a.Value != "" }) {
		return string(gwv1.GatewayReasonAddressNotUsable), fmt.Sprintf("%s: %s: %s", holder, c.Reason, c.Message)
	}
	return string(gwv1.GatewayReasonAddressNotAssigned), fmt.Sprintf("%s: %s: %s", holder, c.Reason, c.Message)
}

// addresses are the Gateway's addresses and what holds them: the owned
// Service's ingress, or with the relay data path the Relay's addresses.
func addresses(in *Input) ([]string, string) {
	if in.Params.DataPath != config.GatewayRelay {
		return ingressIPs(in.Service), "Service " + ServiceName(in.Gateway.Name)
	}
	holder := "Relay " + RelayName(in.Gateway.Name)
	if in.Relay == nil {
		return nil, holder
	}
	return slices.Clone(in.Relay.Status.Addresses), holder
}

func ingressIPs(svc *corev1.Service) []string {
	if svc == nil {
		return nil
	}
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, in.IP)
		}
	}
	return out
}

// listenerStatus is one listener's status: Accepted, Conflicted,
// ResolvedRefs and Programmed.
func listenerStatus(gw *gwv1.Gateway, l *listener, programmed metav1.Condition, now metav1.Time) gwv1.ListenerStatus {
	st := gwv1.ListenerStatus{Name: l.spec.Name, SupportedKinds: l.kinds, AttachedRoutes: l.attached}
	if st.SupportedKinds == nil {
		st.SupportedKinds = []gwv1.RouteGroupKind{}
	}
	for _, old := range gw.Status.Listeners {
		if old.Name == l.spec.Name {
			st.Conditions = slices.Clone(old.Conditions)
		}
	}
	if st.Conditions == nil {
		st.Conditions = []metav1.Condition{}
	}
	gen := gw.Generation
	accepted := metav1.Condition{Type: string(gwv1.ListenerConditionAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.ListenerReasonAccepted), Message: "accepted"}
	conflicted := metav1.Condition{Type: string(gwv1.ListenerConditionConflicted), Status: metav1.ConditionFalse,
		Reason: string(gwv1.ListenerReasonNoConflicts), Message: "no conflicts"}
	if l.conflict != "" {
		msg := fmt.Sprintf("another listener uses port %d/%s", l.spec.Port, transport(l.spec.Protocol))
		conflicted.Status, conflicted.Reason, conflicted.Message = metav1.ConditionTrue, string(l.conflict), msg
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, string(l.conflict), msg
	}
	if l.reason != "" {
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, l.reason, l.message
	}
	resolved := metav1.Condition{Type: string(gwv1.ListenerConditionResolvedRefs), Status: metav1.ConditionTrue,
		Reason: string(gwv1.ListenerReasonResolvedRefs), Message: "resolved"}
	if len(l.badKinds) > 0 {
		resolved.Status, resolved.Reason = metav1.ConditionFalse, string(gwv1.ListenerReasonInvalidRouteKinds)
		resolved.Message = "route kinds not supported on this listener: " + strings.Join(l.badKinds, ", ")
	}
	prog := metav1.Condition{Type: string(gwv1.ListenerConditionProgrammed), Status: metav1.ConditionTrue,
		Reason: string(gwv1.ListenerReasonProgrammed), Message: "programmed"}
	switch {
	case !l.valid():
		prog.Status, prog.Reason, prog.Message = metav1.ConditionFalse, string(gwv1.ListenerReasonInvalid), "the listener is not accepted"
	case programmed.Status != metav1.ConditionTrue:
		prog.Status, prog.Reason, prog.Message = metav1.ConditionFalse, string(gwv1.ListenerReasonPending), programmed.Message
	}
	for _, c := range []metav1.Condition{accepted, conflicted, resolved, prog} {
		setCondition(&st.Conditions, c, gen, now)
	}
	return st
}
