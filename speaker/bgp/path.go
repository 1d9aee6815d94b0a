package bgp

import (
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Path is one prefix the node announces.
type Path struct {
	Prefix netip.Prefix
	// Peers are the names of the peers the prefix goes to; empty means all.
	Peers []string
	// LocalPref is sent to iBGP peers only.
	LocalPref        *uint32
	Communities      []uint32
	LargeCommunities [][3]uint32
	// NextHop zero means the session's local address.
	NextHop netip.Addr
}

func (p *Path) normalize() error {
	if !p.Prefix.IsValid() || p.Prefix.Addr().IsUnspecified() {
		return fmt.Errorf("path %v: %w", p.Prefix, ErrInvalid)
	}
	p.Prefix = p.Prefix.Masked()
	if p.NextHop.IsValid() && p.NextHop.Is4() != p.Prefix.Addr().Is4() {
		return fmt.Errorf("path %s: next hop %s of the other family: %w", p.Prefix, p.NextHop, ErrInvalid)
	}
	p.Peers = sortedUnique(p.Peers)
	return nil
}

func sortedUnique[T interface{ ~string }](in []T) []T {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// sameAttrs reports whether a and b carry the same attributes.
func sameAttrs(a, b *Path) bool {
	lpEqual := (a.LocalPref == nil) == (b.LocalPref == nil) &&
		(a.LocalPref == nil || *a.LocalPref == *b.LocalPref)
	return lpEqual && a.NextHop == b.NextHop &&
		slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities)
}

// goesTo reports whether the path is announced to the named peer.
func (p *Path) goesTo(peer string) bool {
	_, found := slices.BinarySearch(p.Peers, peer)
	return len(p.Peers) == 0 || found
}

func normalizePaths(paths []Path) (map[netip.Prefix]*Path, error) {
	out := make(map[netip.Prefix]*Path, len(paths))
	for _, p := range paths {
		if err := p.normalize(); err != nil {
			return nil, err
		}
		if _, dup := out[p.Prefix]; dup {
			return nil, fmt.Errorf("path %s: %w", p.Prefix, ErrDuplicatePrefix)
		}
		out[p.Prefix] = &p
	}
	return out, nil
}

// apiPath is the gobgp form of p.
func (p *Path) apiPath() (*api.Path, error) {
	addr := p.Prefix.Addr()
	bits := uint8(p.Prefix.Bits())
	var nlri bgppkt.AddrPrefixInterface
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP)}
	family := apiFamily(familyOf(addr))
	if addr.Is4() {
		nlri = bgppkt.NewIPAddrPrefix(bits, addr.String())
		nh := "0.0.0.0"
		if p.NextHop.IsValid() {
			nh = p.NextHop.String()
		}
		attrs = append(attrs, bgppkt.NewPathAttributeNextHop(nh))
	} else {
		nlri = bgppkt.NewIPv6AddrPrefix(bits, addr.String())
		nh := "::"
		if p.NextHop.IsValid() {
			nh = p.NextHop.String()
		}
		attrs = append(attrs, bgppkt.NewPathAttributeMpReachNLRI(nh, []bgppkt.AddrPrefixInterface{nlri}))
	}
	attrs = append(attrs, p.optionalAttrs()...)
	anyNLRI, err := apiutil.MarshalNLRI(nlri)
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", p.Prefix, err)
	}
	anyAttrs, err := apiutil.MarshalPathAttributes(attrs)
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", p.Prefix, err)
	}
	return &api.Path{Family: family, Nlri: anyNLRI, Pattrs: anyAttrs}, nil
}

func (p *Path) optionalAttrs() []bgppkt.PathAttributeInterface {
	var attrs []bgppkt.PathAttributeInterface
	if p.LocalPref != nil {
		attrs = append(attrs, bgppkt.NewPathAttributeLocalPref(*p.LocalPref))
	}
	if len(p.Communities) > 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeCommunities(p.Communities))
	}
	if len(p.LargeCommunities) > 0 {
		lcs := make([]*bgppkt.LargeCommunity, 0, len(p.LargeCommunities))
		for _, c := range p.LargeCommunities {
			lcs = append(lcs, bgppkt.NewLargeCommunity(c[0], c[1], c[2]))
		}
		attrs = append(attrs, bgppkt.NewPathAttributeLargeCommunities(lcs))
	}
	return attrs
}
