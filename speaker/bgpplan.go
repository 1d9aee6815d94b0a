package speaker

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/speaker/bgp"
)

// BGPDesired is what this node announces over BGP: its sessions, its paths
// and the Service addresses those paths carry (for the local VIP option).
// It is saved on the node (see forDisk) without any password.
type BGPDesired struct {
	Peers []bgp.Peer   `json:"peers,omitempty"`
	Paths []bgp.Path   `json:"paths,omitempty"`
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Secrets names, by peer, the Secret key ("namespace/name/key") that
	// holds the peer's TCP MD5 password.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Waiting are the peers left out because their password is not
	// available, with the reason. A session that needs a password never
	// comes up without one.
	Waiting map[string]string `json:"waiting,omitempty"`
	// Sources are what each Service address adds to Paths: an orphan
	// whose pool is gone keeps announcing what it added last.
	Sources []BGPSource `json:"sources,omitempty"`
}

// BGPPlan computes this node's BGP sessions and paths. Every eligible node
// selected by a BGPAdvertisement announces each address (the routers spread
// traffic over them, ECMP); with externalTrafficPolicy Local only nodes
// with a ready endpoint do, and an advertisement that requires ready
// endpoints adds a Service's paths only while it has one (see
// readiness). passwords maps "namespace/secret/key" to the
// TCP MD5 password read from Secrets.
func BGPPlan(in Inputs, node string, passwords map[string]string) BGPDesired {
	d, n, names := bgpSessions(in, node, passwords)
	if n == nil || !eligible(n) {
		return d
	}
	// Paths name waiting peers too, so that a password arriving later
	// adds a session without re-announcing to the others.
	ready := readyEndpoints(in.EndpointSlices)
	var sources []BGPSource
	for i := range in.Services {
		sources = append(sources, serviceSources(in, &in.Services[i], n, names, ready)...)
	}
	slices.SortFunc(sources, compareSources)
	d.Paths, d.Addrs = mergeSources(sources)
	d.Sources = sources
	return d
}

// bgpSessions is the session part of BGPPlan: this node's peers, with
// their passwords or why they wait, this node's Node (nil when it has
// none: then nothing) and the names of all its peers, waiting ones too.
func bgpSessions(in Inputs, node string, passwords map[string]string) (BGPDesired, *corev1.Node, []string) {
	n := findNode(in.Nodes, node)
	if n == nil {
		return BGPDesired{}, nil, nil
	}
	var d BGPDesired
	var names []string
	for _, p := range in.Config.BGPPeers {
		if !p.NodeSelectors.Matches(labels.Set(n.Labels)) {
			continue
		}
		names = append(names, p.Name)
		peer := bgpPeer(p)
		setCrossNextHops(&peer, n)
		if s := p.PasswordSecret; s != nil {
			ref := s.Namespace + "/" + s.Name + "/" + s.Key
			d.Secrets = setKey(d.Secrets, p.Name, ref)
			pw, ok := passwords[ref]
			if !ok || pw == "" {
				d.Waiting = setKey(d.Waiting, p.Name, fmt.Sprintf("TCP MD5 password: Secret %s/%s has no key %q "+
					"(the speakers read BGP password Secrets in namespace %s only)", s.Namespace, s.Name, s.Key, s.Namespace))
				continue
			}
			peer.Password = pw
		}
		d.Peers = append(d.Peers, peer)
	}
	return d, n, names
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// forDisk is d without any password: the peer keeps its Secret reference.
func (d BGPDesired) forDisk() BGPDesired {
	d.Peers = slices.Clone(d.Peers)
	for i := range d.Peers {
		d.Peers[i].Password = ""
	}
	return d
}

// withPasswords puts the passwords known in memory back into a saved plan;
// a peer whose password is unknown waits (see BGPDesired.Waiting).
func (d BGPDesired) withPasswords(passwords map[string]string) BGPDesired {
	peers := d.Peers
	d.Peers = nil
	d.Waiting = maps.Clone(d.Waiting)
	for _, p := range peers {
		if ref, ok := d.Secrets[p.Name]; ok {
			if passwords[ref] == "" {
				d.Waiting = setKey(d.Waiting, p.Name, "TCP MD5 password not read yet: passwords are never stored on the node, "+
					"and the API server has not answered since the speaker started (Secret "+ref+")")
				continue
			}
			p.Password = passwords[ref]
		}
		d.Peers = append(d.Peers, p)
	}
	return d
}

func findNode(nodes []corev1.Node, name string) *corev1.Node {
	for i := range nodes {
		if nodes[i].Name == name {
			return &nodes[i]
		}
	}
	return nil
}

func bgpPeer(p config.BGPPeer) bgp.Peer {
	peer := bgp.Peer{
		// A link-local address takes its interface as zone (config sets
		// Interface for those only).
		Name: p.Name, Address: p.Address.WithZone(p.Interface), Port: p.Port, MyASN: p.MyASN, PeerASN: p.PeerASN,
		SourceAddress: p.SourceAddress.WithZone(p.Interface), HoldTime: p.HoldTime, KeepaliveTime: p.KeepaliveTime,
		ConnectTime: p.ConnectTime, EBGPMultiHop: p.EBGPMultiHop, GracefulRestart: p.GracefulRestart,
		MaxPrefixes: p.MaxPrefixes,
	}
	for _, f := range p.Families {
		peer.Families = append(peer.Families, familyOf(f))
	}
	if b := p.BFD; b != nil {
		peer.BFD = &bgp.BFD{DesiredMinTx: b.TransmitInterval, RequiredMinRx: b.ReceiveInterval, DetectMult: b.DetectMultiplier,
			Passive: b.Passive, Multihop: b.Multihop, MinTTL: b.MinimumTTL}
	}
	return peer
}

// setCrossNextHops gives a peer that carries a family other than its
// session's a next hop of that family: the node's own address of that
// family (its first global InternalIP, else ExternalIP). IPv6 paths sent
// over an IPv4 session would otherwise carry the session's IPv4 address as
// next hop, which a router cannot use for IPv6. Without such an address
// the announcer sends no paths of that family to the peer (and says so).
func setCrossNextHops(peer *bgp.Peer, n *corev1.Node) {
	for _, f := range peer.Families {
		v6 := f == bgp.IPv6Unicast
		if v6 == peer.Address.Is6() {
			continue
		}
		nh := nodeAddr(n, v6)
		if v6 {
			peer.NextHop6 = nh
		} else {
			peer.NextHop4 = nh
		}
	}
}

// nodeAddr is the node's first global unicast address of the family
// among its InternalIPs, else among its ExternalIPs; zero when it has none.
func nodeAddr(n *corev1.Node, v6 bool) netip.Addr {
	for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if a.Type == typ && err == nil && ip.Is6() == v6 && !ip.Is4In6() && ip.IsGlobalUnicast() {
				return ip
			}
		}
	}
	return netip.Addr{}
}

func familyOf(f v1alpha1.AddressFamily) bgp.Family {
	if f == v1alpha1.IPv6Unicast {
		return bgp.IPv6Unicast
	}
	return bgp.IPv4Unicast
}

// BGPSource is what one Service address adds to this node's paths, one
// path per advertisement before they merge. The plan keeps them so that
// an orphan whose pool is gone goes on being announced as it was last.
type BGPSource struct {
	Addr    netip.Addr `json:"addr"`
	Service string     `json:"service"` // namespace/name
	Paths   []bgp.Path `json:"paths"`
	// Withheld, when set, is why the paths are not announced (see
	// Target.Withheld): the source is only reported.
	Withheld string `json:"withheld,omitempty"`
}

func (b BGPSource) key() (netip.Addr, string) { return b.Addr, b.Service }

// serviceSources are what the addresses of svc add to the paths of node
// n (to its peers only), sorted; of in.LastBGP and ready it reads only
// what concerns svc, so that they may hold that Service's alone (see
// apiView).
func serviceSources(in Inputs, svc *corev1.Service, n *corev1.Node, peers []string, ready readiness) []BGPSource {
	if !config.Serves(svc, in.OnlyOwnClass) {
		return nil
	}
	key := svc.Namespace + "/" + svc.Name
	local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	if local && !ready.nodes[key][n.Name] && ready.any[key] {
		return nil
	}
	var out []BGPSource
	for _, addr := range config.IngressAddrs(svc) {
		if slices.ContainsFunc(out, func(s BGPSource) bool { return s.Addr == addr }) {
			continue // listed twice in the status
		}
		withheld := local && !ready.nodes[key][n.Name] // and none ready anywhere
		var paths []bgp.Path
		if !withheld {
			paths = addrPaths(in, svc, n, addr, peers, ready.any[key])
		}
		if len(paths) > 0 {
			out = append(out, BGPSource{Addr: addr, Service: key, Paths: paths})
		} else if !ready.any[key] {
			// Not announced for want of ready endpoints alone: reported.
			if held := addrPaths(in, svc, n, addr, peers, true); len(held) > 0 {
				out = append(out, BGPSource{Addr: addr, Service: key, Paths: held, Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints})
			}
		}
	}
	slices.SortFunc(out, compareSources)
	return out
}

// compareSources orders sources by address, then Service; no two compare
// equal.
func compareSources(a, b BGPSource) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Service, b.Service))
}

func comparePaths(a, b bgp.Path) int {
	return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), a.Prefix.Bits()-b.Prefix.Bits())
}

// mergeSources merges the paths of sources (sorted by compareSources,
// merged in that order) into one path per prefix: peers and communities
// are united, the highest local preference wins. It returns the paths
// sorted by prefix and the addresses the sources carry, sorted.
func mergeSources(sources []BGPSource) ([]bgp.Path, []netip.Addr) {
	byPrefix := map[netip.Prefix]*bgp.Path{}
	var addrs []netip.Addr
	for _, src := range sources {
		if src.Withheld != "" {
			continue
		}
		for _, p := range src.Paths {
			mergePath(byPrefix, p)
		}
		if len(addrs) == 0 || addrs[len(addrs)-1] != src.Addr {
			addrs = append(addrs, src.Addr)
		}
	}
	out := make([]bgp.Path, 0, len(byPrefix))
	for _, p := range byPrefix {
		out = append(out, *p)
	}
	slices.SortFunc(out, comparePaths)
	return out, addrs
}

// addrPaths are the paths addr of svc adds on node n, to the peers of n
// only: one per advertisement of its pool (see poolFor) or, for an orphan
// whose pool is gone, those it added last (see lastOf and lastNodes).
// anyReady: svc has a ready endpoint somewhere.
func addrPaths(in Inputs, svc *corev1.Service, n *corev1.Node, addr netip.Addr, peers []string, anyReady bool) []bgp.Path {
	pool, gone := poolFor(svc, addr, in.Config.Pools)
	var out []bgp.Path
	if gone {
		last, _ := lastOf(in.LastBGP, svc, addr)
		if last.Withheld != "" {
			return nil // not announced last
		}
		for _, p := range last.Paths {
			if p.Peers = intersect(p.Peers, peers); len(p.Peers) > 0 {
				out = append(out, p)
			}
		}
		return out
	}
	for _, adv := range advertisementsFor(in.Config, svc, n, pool, anyReady) {
		if p, ok := advPath(addr, adv, peers); ok {
			out = append(out, p)
		}
	}
	return out
}

func advertisementsFor(cfg *config.Config, svc *corev1.Service, n *corev1.Node, pool string, anyReady bool) []config.BGPAdvertisement {
	var out []config.BGPAdvertisement
	for _, adv := range cfg.BGPAdvertisements {
		if pool != "" && slices.Contains(adv.Pools, pool) && (anyReady || !adv.RequireReadyEndpoints) &&
			adv.ServiceSelectors.Matches(labels.Set(svc.Labels)) && adv.NodeSelectors.Matches(labels.Set(n.Labels)) {
			out = append(out, adv)
		}
	}
	return out
}

// advPath is adv's announcement of addr; false when it goes to no peer of
// this node.
func advPath(addr netip.Addr, adv config.BGPAdvertisement, peers []string) (bgp.Path, bool) {
	bits := adv.AggregationLength
	if addr.Is6() {
		bits = adv.AggregationLengthV6
	}
	p := bgp.Path{Prefix: netip.PrefixFrom(addr, bits).Masked(), Peers: intersect(adv.Peers, peers)}
	if len(p.Peers) == 0 {
		return bgp.Path{}, false
	}
	if adv.LocalPref != nil {
		lp := *adv.LocalPref
		p.LocalPref = &lp
	}
	for _, c := range adv.Communities {
		if c.Large {
			p.LargeCommunities = append(p.LargeCommunities, [3]uint32{c.GlobalAdmin, c.LocalData1, c.LocalData2})
		} else {
			p.Communities = append(p.Communities, c.Value)
		}
	}
	return p, true
}

// mergePath adds from to the path of its prefix.
func mergePath(byPrefix map[netip.Prefix]*bgp.Path, from bgp.Path) {
	p := byPrefix[from.Prefix]
	if p == nil {
		p = &bgp.Path{Prefix: from.Prefix}
		byPrefix[from.Prefix] = p
	}
	p.Peers = union(p.Peers, from.Peers)
	if from.LocalPref != nil && (p.LocalPref == nil || *from.LocalPref > *p.LocalPref) {
		lp := *from.LocalPref
		p.LocalPref = &lp
	}
	for _, c := range from.Communities {
		if !slices.Contains(p.Communities, c) {
			p.Communities = append(p.Communities, c)
		}
	}
	for _, l := range from.LargeCommunities {
		if !slices.Contains(p.LargeCommunities, l) {
			p.LargeCommunities = append(p.LargeCommunities, l)
		}
	}
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
