package gatewayctl

// The relay data path. A Gateway whose class's parameters say dataPath
// Relay is served by pier-relay: the controller owns a Relay named
// <gateway>-gateway whose listeners are the Gateway's and whose backend
// Service is the owned Service <gateway>-gateway, headless and without a
// selector. That Service's EndpointSlices, written here, list the
// routes' ready backends per listener, labelled with their weight
// (v1alpha1.LabelEndpointWeight); the relays place new flows on them by
// weighted Maglev. The Relay's controller gives the Relay its own
// LoadBalancer Service (<gateway>-gateway-relay), with the addresses the
// Gateway asks for, and the speakers announce it like any other.

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// RelayName is the name of the Relay owned for Gateway name.
func RelayName(gateway string) string { return gateway + serviceSuffix }

// MaxWeight is the weight of a listener's heaviest endpoint in the
// slices of the relay data path; the others are scaled to it, at least 1.
const MaxWeight = 1_000_000

// ConditionWeightsHonored is the route parent condition Pier sets False
// when kube-proxy serves the Gateway and the route's weights would give
// its endpoints unequal shares: kube-proxy spreads new flows evenly over
// endpoints. It is absent otherwise.
const ConditionWeightsHonored = "pier.dev/WeightsHonored"

// ReasonWeightsNotSupported is its reason.
const ReasonWeightsNotSupported = "UnsupportedValue"

// weightsCondition is the condition to set on the route's parent entry
// when the data path cannot honour its weights (true), else false.
func weightsCondition(in *Input, eps []endpoint) (metav1.Condition, bool) {
	if in.Params.DataPath == config.GatewayRelay || evenShares(eps) {
		return metav1.Condition{}, false
	}
	return metav1.Condition{Type: ConditionWeightsHonored, Status: metav1.ConditionFalse, Reason: ReasonWeightsNotSupported,
		Message: "the backendRefs' weights give endpoints unequal shares, and kube-proxy spreads new flows evenly over " +
			"endpoints: use a GatewayClass whose parameters say dataPath: Relay for weighted placement"}, true
}

// evenShares reports whether every endpoint (address and port) has the
// same share of the flows.
func evenShares(eps []endpoint) bool {
	shares := map[string]float64{}
	for _, e := range eps {
		shares[e.addr+"/"+strconv.Itoa(int(e.port))] += e.weight
	}
	var first float64
	for _, w := range shares {
		if first == 0 {
			first = w
		}
		if math.Abs(w-first) > 1e-9*first {
			return false
		}
	}
	return true
}

// backendService is the owned Service of the relay data path: headless,
// without a selector, named by the Relay as its backend.
func backendService(gw *gwv1.Gateway, ls []*listener) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: ownedMeta(gw, ServiceName(gw.Name)),
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack)},
	}
	svc.Spec.Ports = servicePorts(ls)
	return svc
}

// weighted is one endpoint of a listener with its summed share.
type weighted struct {
	family discoveryv1.AddressType
	port   int32
	share  float64
}

// weightedSlices are the backend Service's EndpointSlices: for each
// listener, family, target port and weight, the attached routes' ready
// endpoints. An endpoint named by several backendRefs of a listener is
// listed once, with their shares summed, on the lowest target port.
func weightedSlices(gw *gwv1.Gateway, svc *corev1.Service, ls []*listener, byListener map[*listener][]endpoint) []*discoveryv1.EndpointSlice {
	type key struct {
		port   string
		proto  corev1.Protocol
		family discoveryv1.AddressType
		target int32
		weight uint32
	}
	groups := map[key][]string{}
	for _, l := range ls {
		for addr, e := range listenerShares(byListener[l]) {
			k := key{l.portName(), corev1.Protocol(transport(l.spec.Protocol)), e.family, e.port, uint32(e.share)}
			groups[k] = append(groups[k], addr)
		}
	}
	var out []*discoveryv1.EndpointSlice
	for k, addrs := range groups {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: svc.Namespace,
				Name:      fmt.Sprintf("%s-%s-%d-%s-w%d", svc.Name, k.port, k.target, strings.ToLower(string(k.family)), k.weight),
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: SliceManager,
					LabelManagedBy: ManagedByPier, gwv1.GatewayNameLabelKey: gw.Name,
					v1alpha1.LabelEndpointWeight: strconv.FormatUint(uint64(k.weight), 10)},
				OwnerReferences: svc.OwnerReferences,
			},
			AddressType: k.family,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(k.port), Protocol: ptr.To(k.proto), Port: ptr.To(k.target)}},
		}
		slices.Sort(addrs)
		for _, a := range addrs {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
		}
		out = append(out, es)
	}
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// listenerShares sums a listener's endpoints by address and scales the
// shares to integer weights, the largest MaxWeight, none below 1.
func listenerShares(eps []endpoint) map[string]weighted {
	out := map[string]weighted{}
	var top float64
	for _, e := range eps {
		w, ok := out[e.addr]
		if !ok || e.port < w.port {
			w.port = e.port
		}
		w.family, w.share = e.family, w.share+e.weight
		out[e.addr] = w
		top = max(top, w.share)
	}
	for a, w := range out {
		w.share = max(1, math.Round(w.share/top*MaxWeight))
		out[a] = w
	}
	return out
}

// desiredRelay is the Relay owned for the Gateway, and why it cannot be
// served ("" when it can): the rules of config.ParseRelay, which the
// relays apply too.
func desiredRelay(gw *gwv1.Gateway, ls []*listener, addrs []netip.Addr, params config.GatewayParameters) (*v1alpha1.Relay, string) {
	r := &v1alpha1.Relay{
		ObjectMeta: ownedMeta(gw, RelayName(gw.Name)),
		Spec: v1alpha1.RelaySpec{
			Backend:  v1alpha1.RelayBackend{ServiceName: ServiceName(gw.Name), ProxyProtocol: params.ProxyProtocol},
			Exposure: v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer},
			Routing:  v1alpha1.RelayRouting{Key: params.RoutingKey},
			DataPath: v1alpha1.DataPathUserspace,
		},
	}
	if a := addressAnnotations(gw, addrs); len(a) > 0 {
		r.Spec.Exposure.ServiceAnnotations = a
	}
	r.Spec.Exposure.IPFamilies, r.Spec.Exposure.IPFamilyPolicy = families(addrs)
	for _, l := range ls {
		if l.valid() {
			r.Spec.Listeners = append(r.Spec.Listeners, v1alpha1.RelayListener{Name: l.portName(),
				Protocol: corev1.Protocol(transport(l.spec.Protocol)), Port: l.spec.Port})
		}
	}
	if _, errs := config.ParseRelay(r); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, "the Gateway's Relay cannot be served: " + strings.Join(msgs, "; ")
	}
	return r, ""
}

// applyRelay makes cur carry want's owner, labels and spec (every field
// the API server defaults is set in want) and reports a change.
func applyRelay(cur, want *v1alpha1.Relay) bool {
	before := cur.DeepCopy()
	cur.OwnerReferences = want.OwnerReferences
	cur.Labels = merged(cur.Labels, want.Labels)
	cur.Spec = want.Spec
	return !equality.Semantic.DeepEqual(before, cur)
}
