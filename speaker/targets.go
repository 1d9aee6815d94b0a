package speaker

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// LabelExcludeLB marks nodes that must not carry load-balancer traffic.
const LabelExcludeLB = "node.kubernetes.io/exclude-from-external-load-balancers"

// Target is one announced address and where the API allows it to be
// answered: node name -> allowed interface names (empty: any interface
// whose subnet holds the address).
type Target struct {
	Addr    netip.Addr          `json:"addr"`
	Service string              `json:"service"` // namespace/name
	Nodes   map[string][]string `json:"nodes"`
	// Balanced: an advertisement with spread Balanced selects it (Plan).
	Balanced bool `json:"balanced,omitempty"`
	// Withheld, when set, is why the address is not announced
	// (v1alpha1.NotAnnouncedNoReadyEndpoints): Nodes are then those that
	// would announce it, and its owner only reports it (ServiceL2Status).
	Withheld string `json:"withheld,omitempty"`
}

// Inputs are the API objects Targets reads.
type Inputs struct {
	Config         *config.Config
	Services       []corev1.Service
	EndpointSlices []discoveryv1.EndpointSlice
	Nodes          []corev1.Node
	OnlyOwnClass   bool
	// Last are the targets computed last and LastBGP this node's BGP
	// sources planned last: they keep an orphan whose pool is gone
	// announced as it was.
	Last    []Target
	LastBGP []BGPSource
	// nodeSets, when set, interns the targets' allowed-node maps.
	nodeSets *nodeSets
}

// Targets computes the L2 targets, sorted by address then Service
// (compareTargets). Addresses that no
// L2Advertisement selects are not announced. An orphan (an address an edit
// left outside every pool, which its Service keeps until it lets it go)
// stays announced: as a member of the pool its Service's annotation names
// or, when that pool is gone, on the nodes that announced it last.
//
// An advertisement that requires ready endpoints selects a Service only
// while it has one (see readiness). The API view is read only once it is
// synced, and while the API server is unreachable the cache keeps the
// EndpointSlices last seen, so an outage withdraws nothing.
func Targets(in Inputs) []Target {
	ready := readyEndpoints(in.EndpointSlices)
	in.nodeSets = newNodeSets()
	var out []Target
	for i := range in.Services {
		out = append(out, serviceTargets(in, &in.Services[i], ready)...)
	}
	slices.SortFunc(out, compareTargets)
	return out
}

// serviceTargets are the L2 targets of one Service, sorted; of in.Last and
// ready it reads only what concerns svc, so that they may hold that
// Service's alone (see apiView).
func serviceTargets(in Inputs, svc *corev1.Service, ready readiness) []Target {
	if !config.Serves(svc, in.OnlyOwnClass) {
		return nil
	}
	key := svc.Namespace + "/" + svc.Name
	var out []Target
	for _, addr := range config.IngressAddrs(svc) {
		if slices.ContainsFunc(out, func(t Target) bool { return t.Addr == addr }) {
			continue // listed twice in the status
		}
		var nodes map[string][]string
		var balanced bool
		if pool, gone := poolFor(svc, addr, in.Config.Pools); gone {
			nodes, balanced = lastNodes(in.Last, svc, addr, ready.nodes[key])
		} else {
			nodes, balanced = allowedNodes(in, svc, pool, ready.nodes[key], ready.any[key])
		}
		if len(nodes) > 0 {
			out = append(out, Target{Addr: addr, Service: key, Nodes: in.nodeSets.intern(nodes), Balanced: balanced})
		} else if held := withheldNodes(in, svc, addr, ready.any[key]); len(held) > 0 {
			out = append(out, Target{Addr: addr, Service: key, Nodes: in.nodeSets.intern(held), Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints})
		}
	}
	slices.SortFunc(out, compareTargets)
	return out
}

// compareTargets orders targets by address, then Service: an address a
// Service holds is announced once, so no two targets compare equal.
func compareTargets(a, b Target) int {
	return cmp.Or(a.Addr.Compare(b.Addr), strings.Compare(a.Service, b.Service))
}

// allowedNodes applies every L2Advertisement that selects the address's
// pool and the Service; a node allowed by several gets the union of their
// interfaces, or any interface (nil) if one of them allows any. ready are
// the nodes with a ready endpoint of the Service, anyReady whether it has
// a ready endpoint at all. balanced says that an advertisement with
// spread Balanced allows some node.
func allowedNodes(in Inputs, svc *corev1.Service, pool string, ready map[string]bool, anyReady bool) (nodes map[string][]string, balanced bool) {
	if pool == "" {
		return nil, false
	}
	local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	nodes = map[string][]string{}
	for _, adv := range in.Config.L2Advertisements {
		if !slices.Contains(adv.Pools, pool) || !adv.ServiceSelectors.Matches(labels.Set(svc.Labels)) ||
			(adv.RequireReadyEndpoints && !anyReady) {
			continue
		}
		for i := range in.Nodes {
			n := &in.Nodes[i]
			if !eligible(n) || !adv.NodeSelectors.Matches(labels.Set(n.Labels)) || (local && !ready[n.Name]) {
				continue
			}
			balanced = balanced || adv.Balanced
			have, seen := nodes[n.Name]
			switch {
			case seen && have == nil: // already any interface
			case len(adv.Interfaces) == 0:
				nodes[n.Name] = nil
			default:
				nodes[n.Name] = union(have, adv.Interfaces)
			}
		}
	}
	return nodes, balanced
}

// withheldNodes are the nodes that would announce addr of svc if it had a
// ready endpoint, when it has none anywhere and that alone keeps it
// unannounced (an advertisement requires ready endpoints, or its
// externalTrafficPolicy is Local). An orphan whose pool is gone is not
// withheld (see lastNodes).
func withheldNodes(in Inputs, svc *corev1.Service, addr netip.Addr, anyReady bool) map[string][]string {
	if anyReady {
		return nil
	}
	pool, gone := poolFor(svc, addr, in.Config.Pools)
	if gone {
		return nil
	}
	everywhere := make(map[string]bool, len(in.Nodes))
	for i := range in.Nodes {
		everywhere[in.Nodes[i].Name] = true
	}
	nodes, _ := allowedNodes(in, svc, pool, everywhere, true)
	return nodes
}

// eligible: not excluded by label and with a working network.
func eligible(n *corev1.Node) bool {
	if _, excluded := n.Labels[LabelExcludeLB]; excluded {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			return false
		}
	}
	return true
}

// poolFor is the pool addr is announced as: the pool holding it or, for an
// orphan, the pool its Service's annotation names. A dual-stack Service
// may name one pool per family ("v4pool,v6pool"): the orphan's is the named
// pool that holds its family, else a named pool that is gone. gone reports
// an orphan whose pool is no longer in the configuration (deleted or left
// out).
func poolFor(svc *corev1.Service, addr netip.Addr, pools []allocator.Pool) (name string, gone bool) {
	if p := poolOf(addr, pools); p != "" {
		return p, false
	}
	names := strings.Split(svc.Annotations[v1alpha1.AnnotationAllocatedFromPool], ",")
	if names[0] == "" {
		return "", false
	}
	byName := func(n string) int { return slices.IndexFunc(pools, func(p allocator.Pool) bool { return p.Name == n }) }
	for _, n := range names {
		if i := byName(n); i >= 0 && holdsFamily(pools[i], addr.Is4()) {
			return n, false
		}
	}
	for _, n := range names {
		if byName(n) < 0 {
			return n, true
		}
	}
	return names[0], false // every named pool is there; none holds the family now
}

// holdsFamily reports whether p has addresses of IPv4 (is4) or IPv6.
func holdsFamily(p allocator.Pool, is4 bool) bool {
	for _, pfx := range p.Prefixes {
		if pfx.Addr().Is4() == is4 {
			return true
		}
	}
	for _, r := range p.Ranges {
		if r.First.Is4() == is4 {
			return true
		}
	}
	return false
}

// announced is a record of how an address of a Service was announced
// last: Target (L2) or BGPSource (BGP).
type announced interface {
	key() (netip.Addr, string)
}

func (t Target) key() (netip.Addr, string) { return t.Addr, t.Service }

// lastOf is how addr of svc was announced last: the announcement of an
// orphan whose pool is gone (see poolFor), for L2 and BGP alike. false
// (and the zero record) when it was not.
func lastOf[T announced](last []T, svc *corev1.Service, addr netip.Addr) (T, bool) {
	for _, r := range last {
		if a, s := r.key(); a == addr && s == svc.Namespace+"/"+svc.Name {
			return r, true
		}
	}
	var zero T
	return zero, false
}

// lastNodes are the nodes that announced addr for svc last; for
// ExternalTrafficPolicy Local only those with a ready endpoint. Whether
// the advertisement required ready endpoints is not known any more (its
// pool is gone), so the orphan stays announced without one: withdrawn, it
// would have no record to come back from. It keeps the spread it had.
func lastNodes(last []Target, svc *corev1.Service, addr netip.Addr, ready map[string]bool) (map[string][]string, bool) {
	t, ok := lastOf(last, svc, addr)
	if !ok || t.Withheld != "" {
		return nil, false // not announced last
	}
	local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	nodes := map[string][]string{}
	for n, ifaces := range t.Nodes {
		if !local || ready[n] {
			nodes[n] = ifaces
		}
	}
	return nodes, t.Balanced
}

func poolOf(addr netip.Addr, pools []allocator.Pool) string {
	for _, p := range pools {
		for _, pfx := range p.Prefixes {
			if pfx.Contains(addr) {
				return p.Name
			}
		}
		for _, r := range p.Ranges {
			if r.First.Compare(addr) <= 0 && addr.Compare(r.Last) <= 0 {
				return p.Name
			}
		}
	}
	return ""
}

// readiness says which Services have ready endpoints, by
// "namespace/name": on which nodes (for externalTrafficPolicy Local) and
// whether anywhere at all, endpoints that name no node included (for
// advertisements that require ready endpoints).
type readiness struct {
	nodes map[string]map[string]bool
	any   map[string]bool
}

// readyEndpoints reads the readiness of the Services' endpoints.
func readyEndpoints(slicesIn []discoveryv1.EndpointSlice) readiness {
	out := readiness{nodes: map[string]map[string]bool{}, any: map[string]bool{}}
	for _, es := range slicesIn {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := es.Namespace + "/" + svc
		for _, ep := range es.Endpoints {
			if !endpointReady(ep.Conditions) {
				continue
			}
			out.any[key] = true
			if ep.NodeName == nil {
				continue
			}
			if out.nodes[key] == nil {
				out.nodes[key] = map[string]bool{}
			}
			out.nodes[key][*ep.NodeName] = true
		}
	}
	return out
}

// endpointReady: ready is true or unset (unknown, which the EndpointSlice
// API says to take as ready) and the endpoint is not terminating. A
// terminating endpoint that still serves is draining, not ready.
func endpointReady(c discoveryv1.EndpointConditions) bool {
	return (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating)
}
