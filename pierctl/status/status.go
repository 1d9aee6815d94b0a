// Package status gathers what Pier is doing from the API server into one
// report: pools and their usage, LoadBalancer Services with their
// addresses, pool and announcing nodes (L2 and BGP, with the BGP peers),
// BGP sessions, the nodes whose daemons left configuration objects out
// (object, field and why), relays, and Pier's
// own workloads with the reason any of their Pods is not Ready. [Read]
// lists the objects, [Build] (pure) assembles the report, and
// [Status.WriteText] and [Status.WriteJSON] print it.
package status

import (
	"cmp"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/configstatus"
)

// Objects are the listed objects Build reads.
type Objects struct {
	Namespace string // Pier's
	Pools     []v1alpha1.IPAddressPool
	Services  []corev1.Service
	L2        []v1alpha1.ServiceL2Status
	Sessions  []v1alpha1.BGPSessionStatus
	// BGPAnnouncements and Configurations are the speakers' (and relay
	// agents') per-node objects.
	BGPAnnouncements []v1alpha1.BGPAnnouncementStatus
	Configurations   []v1alpha1.ConfigurationStatus
	Relays           []v1alpha1.Relay
	// Pier's Deployments, DaemonSets and Pods (Selector) in Namespace, and
	// the events there.
	Deployments []appsv1.Deployment
	DaemonSets  []appsv1.DaemonSet
	Pods        []corev1.Pod
	Events      []corev1.Event
	// Missing names the Pier resources whose CRD is not installed
	// ("relays.pier.dev").
	Missing []string
}

// Status is the report; its JSON form is pierctl status -o json.
type Status struct {
	Namespace  string      `json:"namespace"`
	Components []Component `json:"components"`
	Pools      []Pool      `json:"pools"`
	Services   []Service   `json:"services"`
	// L2Spread is how many addresses each node answers ARP/NDP for.
	L2Spread    []L2Node     `json:"l2Spread"`
	BGPSessions []BGPSession `json:"bgpSessions"`
	// Configuration is each node daemon's view of the configuration.
	Configuration []NodeConfiguration `json:"configuration"`
	Relays        []Relay             `json:"relays"`
	Missing       []string            `json:"missingCRDs,omitempty"`
}

// NodeConfiguration says whether one daemon on one node took the whole
// configuration; Problems name the objects and fields it left out.
type NodeConfiguration struct {
	Node      string   `json:"node"`
	Component string   `json:"component"`
	Valid     bool     `json:"valid"`
	Problems  []string `json:"problems,omitempty"`
}

// Pool is one IPAddressPool and its usage (decimal strings, as in its
// status: an IPv6 pool can hold more than an int64 counts).
type Pool struct {
	Name       string   `json:"name"`
	AutoAssign bool     `json:"autoAssign"`
	Addresses  []string `json:"addresses"`
	IPv4       Usage    `json:"ipv4"`
	IPv6       Usage    `json:"ipv6"`
	// Valid is the Valid condition: "True", "False" or "" when unset.
	Valid   string `json:"valid,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// Usage counts a pool's addresses of one family.
type Usage struct {
	Assigned  string `json:"assigned,omitempty"`
	Available string `json:"available,omitempty"`
}

// Service is one LoadBalancer Service.
type Service struct {
	Namespace  string        `json:"namespace"`
	Name       string        `json:"name"`
	Addresses  []string      `json:"addresses"`
	Pool       string        `json:"pool,omitempty"`
	Announcers []L2Announcer `json:"l2Announcers,omitempty"`
	// BGPAnnouncers are the nodes announcing the Service over BGP.
	BGPAnnouncers []BGPAnnouncer `json:"bgpAnnouncers,omitempty"`
}

// BGPAnnouncer is a node announcing some of a Service's addresses over
// BGP, and the peers (BGPPeer names) it sends them to.
type BGPAnnouncer struct {
	Node      string   `json:"node"`
	Addresses []string `json:"addresses"`
	Peers     []string `json:"peers"`
	// NotAnnounced, when set, says why Node, which would announce
	// Addresses to Peers, does not (NoReadyEndpoints).
	NotAnnounced string `json:"notAnnounced,omitempty"`
}

// L2Node is one node's share of the L2 addresses: how many addresses and
// Services it answers ARP/NDP for (from the ServiceL2Status objects). A
// node that runs a speaker Pod and answers for none is listed with zero.
type L2Node struct {
	Node      string `json:"node"`
	Addresses int    `json:"addresses"`
	Services  int    `json:"services"`
}

// L2Announcer is a node answering ARP/NDP for some of a Service's
// addresses.
type L2Announcer struct {
	Node       string   `json:"node"`
	Interfaces []string `json:"interfaces,omitempty"`
	Addresses  []string `json:"addresses"`
	// NotAnnounced, when set, says why Node, which would answer for
	// Addresses, does not (NoReadyEndpoints).
	NotAnnounced string `json:"notAnnounced,omitempty"`
}

// BGPSession is one node's session with one BGPPeer.
type BGPSession struct {
	Node             string     `json:"node"`
	Peer             string     `json:"peer"`
	PeerAddress      string     `json:"peerAddress"`
	State            string     `json:"state"`
	BFDState         string     `json:"bfdState,omitempty"`
	Since            *time.Time `json:"since,omitempty"`
	PrefixesSent     int32      `json:"prefixesSent"`
	PrefixesReceived int32      `json:"prefixesReceived"`
	LastError        string     `json:"lastError,omitempty"`
}

// Relay is one Relay and its readiness.
type Relay struct {
	Namespace     string   `json:"namespace"`
	Name          string   `json:"name"`
	Exposure      string   `json:"exposure"`
	DataPath      string   `json:"dataPath"`
	Addresses     []string `json:"addresses"`
	ReadyBackends int32    `json:"readyBackends"`
	ReadyRelays   int32    `json:"readyRelays"`
	// Ready is the Ready condition's status, "" when unset.
	Ready string `json:"ready,omitempty"`
}

// Build assembles the report; every list is sorted.
func Build(o Objects) Status {
	s := Status{Namespace: o.Namespace, Missing: slices.Sorted(slices.Values(o.Missing)),
		Components: components(o), Pools: []Pool{}, Services: []Service{}, L2Spread: l2Spread(o), BGPSessions: []BGPSession{},
		Configuration: configurations(o.Configurations), Relays: []Relay{}}
	for _, p := range o.Pools {
		s.Pools = append(s.Pools, pool(p))
	}
	slices.SortFunc(s.Pools, func(a, b Pool) int { return cmp.Compare(a.Name, b.Name) })
	announcers, bgpAnnouncers := l2ByService(o.L2), bgpByService(o.BGPAnnouncements)
	for _, svc := range o.Services {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		s.Services = append(s.Services, Service{
			Namespace: svc.Namespace, Name: svc.Name, Addresses: ingress(&svc),
			Pool:          svc.Annotations[v1alpha1.AnnotationAllocatedFromPool],
			Announcers:    announcers[svc.Namespace+"/"+svc.Name],
			BGPAnnouncers: bgpAnnouncers[svc.Namespace+"/"+svc.Name],
		})
	}
	slices.SortFunc(s.Services, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, b := range o.Sessions {
		s.BGPSessions = append(s.BGPSessions, session(b))
	}
	slices.SortFunc(s.BGPSessions, func(a, b BGPSession) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Peer, b.Peer))
	})
	for _, r := range o.Relays {
		s.Relays = append(s.Relays, relay(r))
	}
	slices.SortFunc(s.Relays, func(a, b Relay) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return s
}

func pool(p v1alpha1.IPAddressPool) Pool {
	out := Pool{
		Name: p.Name, AutoAssign: p.Spec.AutoAssign == nil || *p.Spec.AutoAssign, Addresses: p.Spec.Addresses,
		IPv4: Usage{Assigned: p.Status.AssignedIPv4, Available: p.Status.AvailableIPv4},
		IPv6: Usage{Assigned: p.Status.AssignedIPv6, Available: p.Status.AvailableIPv6},
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, "Valid"); c != nil {
		out.Valid = string(c.Status)
		if c.Status != "True" {
			out.Problem = c.Message
		}
	}
	return out
}

func ingress(svc *corev1.Service) []string {
	out := []string{}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, in.IP)
		}
	}
	return out
}

// l2ByService groups the ServiceL2Status objects by the Service their
// labels name (the status fields when the labels are missing).
func l2ByService(in []v1alpha1.ServiceL2Status) map[string][]L2Announcer {
	out := map[string][]L2Announcer{}
	for _, st := range in {
		ns := cmp.Or(st.Labels[v1alpha1.LabelServiceNamespace], st.Status.ServiceNamespace)
		name := cmp.Or(st.Labels[v1alpha1.LabelServiceName], st.Status.ServiceName)
		key := ns + "/" + name
		out[key] = append(out[key], L2Announcer{
			Node:       cmp.Or(st.Status.Node, st.Labels[v1alpha1.LabelNode]),
			Interfaces: st.Status.Interfaces, Addresses: st.Status.Addresses, NotAnnounced: st.Status.NotAnnounced,
		})
	}
	for _, a := range out {
		slices.SortFunc(a, func(x, y L2Announcer) int {
			return cmp.Or(cmp.Compare(x.Node, y.Node), cmp.Compare(strings.Join(x.Addresses, ","), strings.Join(y.Addresses, ",")))
		})
	}
	return out
}

// l2Spread counts each node's L2 addresses and Services, nodes sorted by
// name.
func l2Spread(o Objects) []L2Node {
	byNode := map[string]*L2Node{}
	at := func(node string) *L2Node {
		if byNode[node] == nil {
			byNode[node] = &L2Node{Node: node}
		}
		return byNode[node]
	}
	for _, p := range o.Pods {
		if p.Labels[LabelComponent] == "speaker" && p.Spec.NodeName != "" {
			at(p.Spec.NodeName)
		}
	}
	for _, st := range o.L2 {
		n := at(cmp.Or(st.Status.Node, st.Labels[v1alpha1.LabelNode]))
		if st.Status.NotAnnounced != "" {
			continue // answers for none of them
		}
		n.Addresses += len(st.Status.Addresses)
		n.Services++
	}
	out := []L2Node{}
	for _, n := range byNode {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b L2Node) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// bgpByService turns the nodes' lists of what they announce into each
// Service's announcing nodes, sorted by node.
func bgpByService(in []v1alpha1.BGPAnnouncementStatus) map[string][]BGPAnnouncer {
	out := map[string][]BGPAnnouncer{}
	for _, st := range in {
		node := cmp.Or(st.Status.Node, st.Labels[v1alpha1.LabelNode])
		for _, a := range st.Status.Services {
			out[a.Service] = append(out[a.Service], BGPAnnouncer{Node: node,
				Addresses: orEmpty(a.Addresses), Peers: orEmpty(a.Peers), NotAnnounced: a.NotAnnounced})
		}
	}
	for _, a := range out {
		slices.SortFunc(a, func(x, y BGPAnnouncer) int { return cmp.Compare(x.Node, y.Node) })
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// configurations are the daemons' ConfigurationStatus, by node and
// component.
func configurations(in []v1alpha1.ConfigurationStatus) []NodeConfiguration {
	out := []NodeConfiguration{}
	for _, c := range in {
		nc := NodeConfiguration{Node: cmp.Or(c.Status.Node, c.Labels[v1alpha1.LabelNode]),
			Component: cmp.Or(c.Status.Component, c.Labels[v1alpha1.LabelComponent]), Valid: c.Status.Valid}
		for _, p := range c.Status.Problems {
			nc.Problems = append(nc.Problems, configstatus.Describe(p))
		}
		out = append(out, nc)
	}
	slices.SortFunc(out, func(a, b NodeConfiguration) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Component, b.Component))
	})
	return out
}

func session(b v1alpha1.BGPSessionStatus) BGPSession {
	out := BGPSession{
		Node: b.Status.Node, Peer: cmp.Or(b.Status.Peer, b.Labels[v1alpha1.LabelBGPPeer]),
		PeerAddress: b.Status.PeerAddress, State: b.Status.State, BFDState: b.Status.BFDState,
		PrefixesSent: b.Status.PrefixesSent, PrefixesReceived: b.Status.PrefixesReceived, LastError: b.Status.LastError,
	}
	if b.Status.Since != nil {
		t := b.Status.Since.Time.UTC()
		out.Since = &t
	}
	return out
}

func relay(r v1alpha1.Relay) Relay {
	out := Relay{
		Namespace: r.Namespace, Name: r.Name,
		Exposure:  string(cmp.Or(r.Spec.Exposure.Type, v1alpha1.ExposeLoadBalancer)),
		DataPath:  string(cmp.Or(r.Spec.DataPath, v1alpha1.DataPathUserspace)),
		Addresses: r.Status.Addresses, ReadyBackends: r.Status.ReadyBackends, ReadyRelays: r.Status.ReadyRelays,
	}
	if out.Addresses == nil {
		out.Addresses = []string{}
	}
	if c := meta.FindStatusCondition(r.Status.Conditions, "Ready"); c != nil {
		out.Ready = string(c.Status)
	}
	return out
}
