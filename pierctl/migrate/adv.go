package migrate

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

func fieldIndex(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func (c *converter) l2(u *unstructured.Unstructured, r reporter) {
	var s mlL2Spec
	if !c.decode(u, r, &s) {
		return
	}
	c.res.Objects.L2Advertisements = append(c.res.Objects.L2Advertisements, v1alpha1.L2Advertisement{
		TypeMeta:   typeMeta("L2Advertisement"),
		ObjectMeta: c.meta(u, r),
		Spec: v1alpha1.L2AdvertisementSpec{
			IPAddressPools:         s.IPAddressPools,
			IPAddressPoolSelectors: s.IPAddressPoolSelectors,
			NodeSelectors:          s.NodeSelectors,
			Interfaces:             s.Interfaces,
		},
	})
}

// community records the aliases of a Community object.
func (c *converter) community(u *unstructured.Unstructured, r reporter) {
	var s mlCommunitySpec
	if !c.decode(u, r, &s) {
		return
	}
	for i, a := range s.Communities {
		f := fieldIndex("spec.communities", i)
		if prev, dup := c.aliases[a.Name]; dup {
			r.drop(f, "alias %q is already defined as %q, ignored", a.Name, prev)
			continue
		}
		if _, err := config.ParseCommunity(a.Value); err != nil {
			r.drop(f, "alias %q: %v; the alias cannot be used", a.Name, err)
			continue
		}
		c.aliases[a.Name] = a.Value
	}
}

func (c *converter) bgpAdv(u *unstructured.Unstructured, r reporter) {
	var s mlBGPAdvSpec
	if !c.decode(u, r, &s) {
		return
	}
	spec := v1alpha1.BGPAdvertisementSpec{
		Communities:            c.communities(r, s.Communities),
		IPAddressPools:         s.IPAddressPools,
		IPAddressPoolSelectors: s.IPAddressPoolSelectors,
		NodeSelectors:          s.NodeSelectors,
	}
	spec.AggregationLength, _ = int32Field(r, "spec.aggregationLength", s.AggregationLength)
	spec.AggregationLengthV6, _ = int32Field(r, "spec.aggregationLengthV6", s.AggregationLengthV6)
	if s.LocalPref != 0 {
		spec.LocalPref = &s.LocalPref
	}
	peers, ok := c.peerRefs(r, s.Peers)
	if !ok {
		return
	}
	spec.Peers = peers
	c.res.Objects.BGPAdvertisements = append(c.res.Objects.BGPAdvertisements, v1alpha1.BGPAdvertisement{
		TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: c.meta(u, r), Spec: spec,
	})
}

// communities resolves aliases; values Pier cannot read are dropped.
func (c *converter) communities(r reporter, in []string) []string {
	var out []string
	for i, v := range in {
		if alias, ok := c.aliases[v]; ok {
			out = append(out, alias)
			continue
		}
		if _, err := config.ParseCommunity(v); err != nil {
			r.drop(fieldIndex("spec.communities", i), "%q is neither a community nor an alias defined by a Community object, dropped", v)
			continue
		}
		out = append(out, v)
	}
	return out
}

// peerRefs drops references to peers that were not converted; false when
// none is left of a non-empty list, since no peers would mean every peer.
func (c *converter) peerRefs(r reporter, in []string) ([]string, bool) {
	var out, gone []string
	for _, p := range in {
		if c.skipped[p] {
			gone = append(gone, p)
			continue
		}
		out = append(out, p)
	}
	switch {
	case len(gone) == 0:
		return in, true
	case len(out) == 0:
		r.drop("spec.peers", "names only BGPPeers that were not converted (%s); without peers it would advertise to every peer, so it is not converted", quoteList(gone))
		return nil, false
	}
	r.drop("spec.peers", "BGPPeers %s were not converted; references dropped", quoteList(gone))
	return slices.Clip(out), true
}
