package config

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/pier-lb/pier/allocator"
)

// entry is one valid element of a pool's spec.addresses.
type entry struct {
	pool  Ref
	index int
	text  string // as written, quoted
	first netip.Addr
	last  netip.Addr
	// prefix is set for a CIDR entry.
	prefix netip.Prefix
	// bits is the length of the longest prefix covering the entry: the
	// prefix length of a CIDR, of the smallest covering prefix of a range.
	bits int
}

// before orders entries by pool (namespace, name), then position.
func (e entry) before(o entry) bool {
	return cmp.Or(cmp.Compare(e.pool.Namespace, o.pool.Namespace),
		cmp.Compare(e.pool.Name, o.pool.Name), cmp.Compare(e.index, o.index)) < 0
}

// mapped4 is ::ffff:0:0/96, where IPv4-mapped IPv6 addresses live; pools
// may not reach into it (the allocator keeps IPv4 there).
var mapped4 = netip.MustParsePrefix("::ffff:0:0/96")

// parseEntry parses a CIDR ("198.51.100.0/24") or an inclusive range
// ("198.51.100.10-198.51.100.20"). A CIDR with host bits set is refused
// rather than masked: "198.51.100.1/24" more often means a typo or a
// single address than the whole /24.
func parseEntry(raw string) (entry, error) {
	s := strings.TrimSpace(raw)
	var (
		e   entry
		err error
	)
	switch {
	case strings.Contains(s, "/"):
		e, err = parseCIDR(s)
	case strings.Contains(s, "-"):
		e, err = parseRange(s)
	default:
		if a, perr := netip.ParseAddr(s); perr == nil && a.Zone() == "" {
			return entry{}, fmt.Errorf("%q is a single address, not a CIDR or range (write %s)",
				raw, netip.PrefixFrom(a, a.BitLen()))
		}
		err = fmt.Errorf("%q is not a CIDR or range", raw)
	}
	if err != nil {
		return entry{}, err
	}
	e.text = fmt.Sprintf("%q", raw)
	if err := checkMapped(e, raw); err != nil {
		return entry{}, err
	}
	return e, checkSpecial(e, raw)
}

// special are the ranges no Service address may come from: a pool entry
// holding any address of them is refused whole (not carved around), since
// "0.0.0.0/0" or "224.0.0.0/4" in a pool is a mistake, not a wish.
var special = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified and this-network addresses"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback addresses"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local addresses"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast addresses"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "the loopback address"},
	{netip.MustParsePrefix("fe80::/10"), "link-local addresses"},
	{netip.MustParsePrefix("ff00::/8"), "multicast addresses"},
}

// checkSpecial refuses entries that hold an address of a special range.
func checkSpecial(e entry, raw string) error {
	for _, sp := range special {
		if sp.prefix.Addr().Is4() == e.first.Is4() && !e.last.Less(sp.prefix.Addr()) && !lastAddr(sp.prefix).Less(e.first) {
			return fmt.Errorf("%q holds %s (%s), which no Service can use", raw, sp.what, sp.prefix)
		}
	}
	return nil
}

func parseCIDR(s string) (entry, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return entry{}, fmt.Errorf("%q is not a CIDR or range", s)
	case p.Addr().Is4In6():
		return entry{}, fmt.Errorf("%q is IPv4-mapped IPv6; write IPv4 addresses as IPv4", s)
	case p.Masked() != p:
		return entry{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return entry{first: p.Addr(), last: lastAddr(p), prefix: p, bits: p.Bits()}, nil
}

func parseRange(s string) (entry, error) {
	r, err := allocator.ParseRange(s)
	switch {
	case err != nil:
		return entry{}, fmt.Errorf("%q is not a CIDR or range", s)
	case r.First.Zone() != "" || r.Last.Zone() != "":
		return entry{}, fmt.Errorf("%q: addresses with a zone are not allowed", s)
	case r.First.Is4In6() || r.Last.Is4In6():
		return entry{}, fmt.Errorf("%q is IPv4-mapped IPv6; write IPv4 addresses as IPv4", s)
	case r.First.Is4() != r.Last.Is4():
		return entry{}, fmt.Errorf("%q mixes IPv4 and IPv6", s)
	case r.Last.Less(r.First):
		return entry{}, fmt.Errorf("%q is reversed: %s comes after %s", s, r.First, r.Last)
	}
	return entry{first: r.First, last: r.Last, bits: commonBits(r.First, r.Last)}, nil
}

// checkMapped refuses IPv6 entries that reach into ::ffff:0:0/96.
func checkMapped(e entry, raw string) error {
	if e.first.Is4() || e.last.Less(mapped4.Addr()) || lastAddr(mapped4).Less(e.first) {
		return nil
	}
	return fmt.Errorf("%q overlaps ::ffff:0:0/96 (IPv4-mapped IPv6 addresses)", raw)
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// commonBits is the number of leading bits a and b (same family) share:
// the length of the smallest prefix covering both.
func commonBits(a, b netip.Addr) int {
	x, y := a.AsSlice(), b.AsSlice()
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			return i*8 + bits.LeadingZeros8(d)
		}
	}
	return len(x) * 8
}
