package speaker

import (
	"cmp"
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
type BGPDesired struct {
	Peers []bgp.Peer
	Paths []bgp.Path
	Addrs []netip.Addr
}

// BGPPlan computes this node's BGP sessions and paths. Every eligible node
// selected by a BGPAdvertisement announces each address (the routers spread
// traffic over them, ECMP); with externalTrafficPolicy Local only nodes
// with a ready endpoint do. passwords maps "namespace/secret/key" to the
// TCP MD5 password read from Secrets.
func BGPPlan(in Inputs, node string, passwords map[string]string) BGPDesired {
	n := findNode(in.Nodes, node)
	if n == nil {
		return BGPDesired{}
	}
	d := BGPDesired{Peers: bgpPeers(in.Config.BGPPeers, n, passwords)}
	if !eligible(n) {
		return d
	}
	names := make([]string, len(d.Peers))
	for i, p := range d.Peers {
		names[i] = p.Name
	}
	d.Paths, d.Addrs = bgpPaths(in, n, names)
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

func bgpPeers(cfg []config.BGPPeer, n *corev1.Node, passwords map[string]string) []bgp.Peer {
	var out []bgp.Peer
	for _, p := range cfg {
		if !p.NodeSelectors.Matches(labels.Set(n.Labels)) {
			continue
		}
		peer := bgp.Peer{
			Name: p.Name, Address: p.Address, Port: p.Port, MyASN: p.MyASN, PeerASN: p.PeerASN,
			SourceAddress: p.SourceAddress, HoldTime: p.HoldTime, KeepaliveTime: p.KeepaliveTime,
			ConnectTime: p.ConnectTime, EBGPMultiHop: p.EBGPMultiHop, GracefulRestart: p.GracefulRestart,
		}
		if s := p.PasswordSecret; s != nil {
			peer.Password = passwords[s.Namespace+"/"+s.Name+"/"+s.Key]
		}
		for _, f := range p.Families {
			peer.Families = append(peer.Families, familyOf(f))
		}
		out = append(out, peer)
	}
	return out
}

func familyOf(f v1alpha1.AddressFamily) bgp.Family {
	if f == v1alpha1.IPv6Unicast {
		return bgp.IPv6Unicast
	}
	return bgp.IPv4Unicast
}

// bgpPaths merges every advertisement of every address into one path per
// prefix: peers and communities are united, the highest local preference
// wins.
func bgpPaths(in Inputs, n *corev1.Node, peers []string) ([]bgp.Path, []netip.Addr) {
	ready := readyNodes(in.EndpointSlices)
	byPrefix := map[netip.Prefix]*bgp.Path{}
	var addrs []netip.Addr
	for i := range in.Services {
		svc := &in.Services[i]
		if !config.Serves(svc, in.OnlyOwnClass) {
			continue
		}
		local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		if local && !ready[svc.Namespace+"/"+svc.Name][n.Name] {
			continue
		}
		for _, addr := range config.IngressAddrs(svc) {
			for _, adv := range advertisementsFor(in.Config, svc, n, addr) {
				if mergePath(byPrefix, addr, adv, peers) && !slices.Contains(addrs, addr) {
					addrs = append(addrs, addr)
				}
			}
		}
	}
	out := make([]bgp.Path, 0, len(byPrefix))
	for _, p := range byPrefix {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b bgp.Path) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), a.Prefix.Bits()-b.Prefix.Bits())
	})
	slices.SortFunc(addrs, netip.Addr.Compare)
	return out, addrs
}

func advertisementsFor(cfg *config.Config, svc *corev1.Service, n *corev1.Node, addr netip.Addr) []config.BGPAdvertisement {
	pool := poolOf(addr, cfg.Pools)
	var out []config.BGPAdvertisement
	for _, adv := range cfg.BGPAdvertisements {
		if pool != "" && slices.Contains(adv.Pools, pool) &&
			adv.ServiceSelectors.Matches(labels.Set(svc.Labels)) && adv.NodeSelectors.Matches(labels.Set(n.Labels)) {
			out = append(out, adv)
		}
	}
	return out
}

// mergePath adds adv's announcement of addr; false when it goes to no peer
// of this node.
func mergePath(byPrefix map[netip.Prefix]*bgp.Path, addr netip.Addr, adv config.BGPAdvertisement, peers []string) bool {
	bits := adv.AggregationLength
	if addr.Is6() {
		bits = adv.AggregationLengthV6
	}
	prefix := netip.PrefixFrom(addr, bits).Masked()
	to := intersect(adv.Peers, peers)
	if len(to) == 0 {
		return false
	}
	p := byPrefix[prefix]
	if p == nil {
		p = &bgp.Path{Prefix: prefix}
		byPrefix[prefix] = p
	}
	p.Peers = union(p.Peers, to)
	if adv.LocalPref != nil && (p.LocalPref == nil || *adv.LocalPref > *p.LocalPref) {
		lp := *adv.LocalPref
		p.LocalPref = &lp
	}
	for _, c := range adv.Communities {
		if c.Large {
			l := [3]uint32{c.GlobalAdmin, c.LocalData1, c.LocalData2}
			if !slices.Contains(p.LargeCommunities, l) {
				p.LargeCommunities = append(p.LargeCommunities, l)
			}
		} else if !slices.Contains(p.Communities, c.Value) {
			p.Communities = append(p.Communities, c.Value)
		}
	}
	return true
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
