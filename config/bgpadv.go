package config

import (
	"fmt"
	"math"
	"slices"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// BGPAdvertisement says how pools are announced to BGP peers.
type BGPAdvertisement struct {
	Namespace, Name string
	// Pools are the names of the pools announced: those listed, plus those
	// the pool selectors match, or every pool when the object has neither.
	// Sorted, no duplicates.
	Pools []string
	// AggregationLength (IPv4, default 32) and AggregationLengthV6 (IPv6,
	// default 128) are the prefix lengths announced for each address.
	AggregationLength, AggregationLengthV6 int
	// LocalPref, when set, is sent to iBGP peers.
	LocalPref *uint32
	// Communities in the order given, duplicates removed.
	Communities []Community
	// Peers are the names of the BGPPeers announced to: those listed, or
	// every peer when the object lists none. Sorted, no duplicates.
	Peers []string
	// NodeSelectors pick the nodes that announce; empty means all.
	NodeSelectors Selectors
	// ServiceSelectors pick the Services announced; empty means all.
	ServiceSelectors Selectors
	// RequireReadyEndpoints: announce a Service only while it has a ready
	// endpoint somewhere in the cluster.
	RequireReadyEndpoints bool
}

func (p *parser) parseBGPAdv(o *v1alpha1.BGPAdvertisement) {
	r := refOf(KindBGPAdvertisement, &o.ObjectMeta)
	if !p.checkName(r) {
		return
	}
	s := &o.Spec
	m := p.mark()
	adv := BGPAdvertisement{
		Namespace:             r.Namespace,
		Name:                  r.Name,
		Pools:                 p.resolvePools(r, s.IPAddressPools, s.IPAddressPoolSelectors),
		LocalPref:             p.localPref(r, s.LocalPref),
		Communities:           p.communities(r, s.Communities),
		Peers:                 p.resolvePeers(r, s.Peers),
		NodeSelectors:         p.selectors(r, "spec.nodeSelectors", s.NodeSelectors),
		ServiceSelectors:      p.selectors(r, "spec.serviceSelectors", s.ServiceSelectors),
		RequireReadyEndpoints: s.RequireReadyEndpoints,
	}
	adv.AggregationLength = p.aggregation(r, "spec.aggregationLength", s.AggregationLength, 32, adv.Pools)
	adv.AggregationLengthV6 = p.aggregation(r, "spec.aggregationLengthV6", s.AggregationLengthV6, 128, adv.Pools)
	if p.faulty(m) {
		return
	}
	p.cfg.BGPAdvertisements = append(p.cfg.BGPAdvertisements, adv)
}

// localPref checks the uint32 range of a local preference.
func (p *parser) localPref(r Ref, v *int64) *uint32 {
	if v == nil {
		return nil
	}
	if *v < 0 || *v > math.MaxUint32 {
		p.fail(r, "spec.localPref", "%d out of range; want 0 to 4294967295", *v)
		return nil
	}
	lp := uint32(*v)
	return &lp
}

// aggregation checks an aggregation length of the family with max bits:
// within 0..max, and, for each selected pool, not shorter than the longest
// prefix length among the pool's entries of that family. For a CIDR entry
// that is its own length, so the aggregate never covers addresses outside
// the entry; for a range it is the smallest prefix covering the range,
// which may hold addresses outside the range.
func (p *parser) aggregation(r Ref, path string, v *int32, max int, pools []string) int {
	if v == nil {
		return max
	}
	n := int(*v)
	if n < 0 || n > max {
		p.fail(r, path, "%d is out of range: want 0 to %d", n, max)
		return max
	}
	for _, name := range pools {
		if e, ok := longestEntry(p.entries[name], max); ok && n < e.bits {
			p.tooShort(r, path, n, e)
		}
	}
	return n
}

// longestEntry returns the entry of the family with bits bits that has the
// longest (covering) prefix length.
func longestEntry(entries []entry, bits int) (entry, bool) {
	var best entry
	for _, e := range entries {
		if e.first.BitLen() == bits && (!best.first.IsValid() || e.bits > best.bits) {
			best = e
		}
	}
	return best, best.first.IsValid()
}

func (p *parser) tooShort(r Ref, path string, n int, e entry) {
	what := "the prefix length of " + e.text
	if !e.prefix.IsValid() {
		what = fmt.Sprintf("/%d, the smallest prefix covering %s", e.bits, e.text)
	}
	x := p.fail(r, path, "%d is shorter than %s (%s %s): want %d or more",
		n, what, e.pool, field("spec.addresses", e.index), e.bits)
	x.Related = []Ref{e.pool}
}

// communities parses the communities, dropping duplicates.
func (p *parser) communities(r Ref, in []string) []Community {
	var out []Community
	for i, s := range in {
		c, err := ParseCommunity(s)
		if err != nil {
			p.fail(r, field("spec.communities", i), "%v", err)
			continue
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// resolvePeers returns the named peers, or all when none is named.
func (p *parser) resolvePeers(r Ref, names []string) []string {
	if len(names) == 0 {
		return sortedKeys(p.peers)
	}
	var out []string
	for i, name := range names {
		if _, ok := p.peers[name]; !ok {
			e := p.fail(r, field("spec.peers", i), "BGPPeer %q does not exist", name)
			e.Related = []Ref{{Kind: KindBGPPeer, Namespace: r.Namespace, Name: name}}
			p.dangling++
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
