package gatewayctl

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Route kinds served, and the listener protocol each attaches to.
const (
	KindTCPRoute = "TCPRoute"
	KindUDPRoute = "UDPRoute"
)

var routeKindFor = map[gwv1.ProtocolType]gwv1.Kind{
	gwv1.TCPProtocolType: KindTCPRoute,
	gwv1.UDPProtocolType: KindUDPRoute,
}

// transport is the L4 protocol a listener protocol rides on.
func transport(p gwv1.ProtocolType) string {
	if p == gwv1.UDPProtocolType {
		return "UDP"
	}
	return "TCP" // HTTP, HTTPS, TLS, TCP and other names all use TCP ports
}

// listener is one listener of the Gateway as judged here.
type listener struct {
	spec gwv1.Listener
	// problem is why it cannot be served ("" when it is): its Accepted
	// condition's reason and message.
	reason, message string
	conflict        gwv1.ListenerConditionReason // "" when not conflicted
	kinds           []gwv1.RouteGroupKind        // supported kinds it allows
	badKinds        []string                     // allowed kinds it cannot serve
	attached        int32
	servedBy        string // Key of the route whose backends it serves
}

func (l *listener) valid() bool { return l.reason == "" && l.conflict == "" }

// portName is the Service and EndpointSlice port name of the listener:
// listener names may be longer than a port name may be.
func (l *listener) portName() string {
	return fmt.Sprintf("%s-%d", strings.ToLower(transport(l.spec.Protocol)), l.spec.Port)
}

// judgeListeners checks protocols, conflicts and allowed route kinds.
func judgeListeners(gw *gwv1.Gateway) []*listener {
	out := make([]*listener, len(gw.Spec.Listeners))
	for i, spec := range gw.Spec.Listeners {
		l := &listener{spec: spec}
		kind, ok := routeKindFor[spec.Protocol]
		if !ok {
			l.reason = string(gwv1.ListenerReasonUnsupportedProtocol)
			l.message = fmt.Sprintf("protocol %s is not supported: Pier serves TCP and UDP listeners", spec.Protocol)
		} else {
			l.kinds, l.badKinds = allowedKinds(spec.AllowedRoutes, kind)
		}
		out[i] = l
	}
	markConflicts(out)
	return out
}

// markConflicts marks listeners sharing a port and transport: a Service
// port is one port and protocol.
func markConflicts(ls []*listener) {
	for _, a := range ls {
		for _, b := range ls {
			if a == b || a.spec.Port != b.spec.Port || transport(a.spec.Protocol) != transport(b.spec.Protocol) {
				continue
			}
			if a.spec.Protocol != b.spec.Protocol {
				a.conflict = gwv1.ListenerReasonProtocolConflict
			} else if a.conflict == "" {
				a.conflict = gwv1.ListenerReasonHostnameConflict
			}
		}
	}
}

// allowedKinds splits allowedRoutes.kinds into the ones a listener of
// route kind kind serves and the others; none listed means kind.
func allowedKinds(ar *gwv1.AllowedRoutes, kind gwv1.Kind) (ok []gwv1.RouteGroupKind, bad []string) {
	group := gwv1.Group(gwv1.GroupName)
	if ar == nil || len(ar.Kinds) == 0 {
		return []gwv1.RouteGroupKind{{Group: &group, Kind: kind}}, nil
	}
	for _, k := range ar.Kinds {
		g := gwv1.GroupName
		if k.Group != nil {
			g = string(*k.Group)
		}
		if g == gwv1.GroupName && k.Kind == kind {
			ok = append(ok, gwv1.RouteGroupKind{Group: &group, Kind: kind})
		} else {
			bad = append(bad, g+"/"+string(k.Kind))
		}
	}
	return ok, bad
}

// admits reports whether the listener takes a route of kind from namespace
// ns (labels nsLabels) of a Gateway in gwNS.
func (l *listener) admits(kind gwv1.Kind, ns string, nsLabels map[string]string, gwNS string) bool {
	if !l.valid() || !kindIn(l.kinds, kind) {
		return false
	}
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		sel = ar.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return ns == gwNS
	case gwv1.NamespacesFromSelector:
		s, err := metav1.LabelSelectorAsSelector(sel)
		return err == nil && sel != nil && s.Matches(labels.Set(nsLabels))
	}
	return false
}

func kindIn(kinds []gwv1.RouteGroupKind, kind gwv1.Kind) bool {
	for _, k := range kinds {
		if k.Kind == kind {
			return true
		}
	}
	return false
}
