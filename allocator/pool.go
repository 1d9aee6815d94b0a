package allocator

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Pool is a named set of addresses and the rules for handing them out.
type Pool struct {
	Name     string
	Prefixes []netip.Prefix // e.g. 198.51.100.0/24, 2001:db8::/64
	Ranges   []Range        // e.g. 198.51.100.10-198.51.100.20

	// DisableAutoAssign keeps the pool for Services that ask for it by
	// name or ask for one of its addresses. The zero value auto-assigns.
	DisableAutoAssign bool
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255.
	AvoidBuggyIPs bool
	// Priority ranks pools when a Service names none: lower number first,
	// ties broken by Name.
	Priority int

	// Eligibility. A Service is eligible when its namespace is one of
	// Namespaces or its namespace labels match one of NamespaceSelectors
	// (both empty: any namespace), and its labels match one of
	// ServiceSelectors (empty: any Service).
	Namespaces         []string
	NamespaceSelectors []Selector
	ServiceSelectors   []Selector
}

// Range is an inclusive range of addresses of one family.
type Range struct{ First, Last netip.Addr }

// ParseRange parses "first-last", e.g. "198.51.100.10-198.51.100.20".
func ParseRange(s string) (Range, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, fmt.Errorf("parse range %q: missing '-'", s)
	}
	first, err := netip.ParseAddr(strings.TrimSpace(lo))
	if err != nil {
		return Range{}, fmt.Errorf("parse range %q: %w", s, err)
	}
	last, err := netip.ParseAddr(strings.TrimSpace(hi))
	if err != nil {
		return Range{}, fmt.Errorf("parse range %q: %w", s, err)
	}
	return Range{first, last}, nil
}

func (r Range) String() string { return r.First.String() + "-" + r.Last.String() }

// eligible reports whether the pool may serve a Service in namespace ns.
func (p *Pool) eligible(ns string, nsLabels, svcLabels map[string]string) bool {
	nsOK := len(p.Namespaces) == 0 && len(p.NamespaceSelectors) == 0 ||
		slices.Contains(p.Namespaces, ns) ||
		len(p.NamespaceSelectors) > 0 && anyMatch(p.NamespaceSelectors, nsLabels)
	return nsOK && anyMatch(p.ServiceSelectors, svcLabels)
}

// span is an inclusive range of addresses of one family.
type span struct{ first, last ip128 }

// mapped4 is ::ffff:0:0/96, where IPv4 lives in ip128 space.
var mapped4 = span{ip128{0, 0xffff << 32}, ip128{0, 0xffff<<32 | 0xffffffff}}

func (s span) overlaps(t span) bool { return !s.last.less(t.first) && !t.last.less(s.first) }

func prefixSpan(p netip.Prefix) (span, error) {
	switch {
	case !p.IsValid():
		return span{}, fmt.Errorf("invalid prefix %s", p)
	case p.Addr().Is4In6():
		return span{}, fmt.Errorf("prefix %s: IPv4-mapped IPv6 is not supported", p)
	case p.Masked() != p:
		return span{}, fmt.Errorf("prefix %s has host bits set (want %s)", p, p.Masked())
	}
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	first := ipOf(p.Addr())
	m := hostMask(bits)
	return checkMapped(span{first, ip128{first.hi | m.hi, first.lo | m.lo}}, p.String())
}

func rangeSpan(r Range) (span, error) {
	switch {
	case !r.First.IsValid() || !r.Last.IsValid():
		return span{}, fmt.Errorf("invalid range %s", r)
	case r.First.Zone() != "" || r.Last.Zone() != "":
		return span{}, fmt.Errorf("range %s: zones are not supported", r)
	case r.First.Is4In6() || r.Last.Is4In6():
		return span{}, fmt.Errorf("range %s: IPv4-mapped IPv6 is not supported", r)
	case r.First.Is4() != r.Last.Is4():
		return span{}, fmt.Errorf("range %s mixes families", r)
	case r.Last.Less(r.First):
		return span{}, fmt.Errorf("range %s is reversed", r)
	}
	return checkMapped(span{ipOf(r.First), ipOf(r.Last)}, r.String())
}

// checkMapped refuses IPv6 spans that reach into ::ffff:0:0/96.
func checkMapped(s span, what string) (span, error) {
	if !s.first.is4() && s.overlaps(mapped4) {
		return span{}, fmt.Errorf("%s overlaps ::ffff:0:0/96 (IPv4-mapped)", what)
	}
	return s, nil
}

// mergeSpans sorts spans and merges overlapping or adjacent ones.
func mergeSpans(in []span) []span {
	slices.SortFunc(in, func(a, b span) int { return a.first.cmp(b.first) })
	out := in[:0]
	for _, s := range in {
		if n := len(out); n > 0 && !out[n-1].last.less(s.first.prevOrZero()) {
			if out[n-1].last.less(s.last) {
				out[n-1].last = s.last
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// prevOrZero returns x-1, or 0 for 0.
func (x ip128) prevOrZero() ip128 {
	if x.lo == 0 {
		if x.hi == 0 {
			return x
		}
		x.hi--
	}
	x.lo--
	return x
}

// validatePool checks p and returns its merged spans per family.
func validatePool(p Pool) ([2][]span, error) {
	var spans [2][]span
	if p.Name == "" {
		return spans, errors.New("pool has no name")
	}
	add := func(s span, err error) error {
		if err == nil {
			f := s.first.family().index()
			spans[f] = append(spans[f], s)
		}
		return err
	}
	for _, pr := range p.Prefixes {
		if err := add(prefixSpan(pr)); err != nil {
			return spans, err
		}
	}
	for _, r := range p.Ranges {
		if err := add(rangeSpan(r)); err != nil {
			return spans, err
		}
	}
	if len(spans[0])+len(spans[1]) == 0 {
		return spans, errors.New("no prefixes or ranges")
	}
	if err := validateSelectors(p); err != nil {
		return spans, err
	}
	return [2][]span{mergeSpans(spans[0]), mergeSpans(spans[1])}, nil
}

func validateSelectors(p Pool) error {
	for _, s := range slices.Concat(p.NamespaceSelectors, p.ServiceSelectors) {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("selector: %w", err)
		}
	}
	return nil
}

// countEnding counts the n in [a, b] with n%256 == r.
func countEnding(a, b, r uint64) uint64 {
	upTo := func(x uint64) uint64 {
		if x < r {
			return 0
		}
		return (x-r)/256 + 1
	}
	c := upTo(b)
	if a > 0 {
		c -= upTo(a - 1)
	}
	return c
}

// spanTotal is the number of assignable addresses in s.
func spanTotal(s span, avoidBuggy bool) *big.Int {
	n := s.last.big()
	n.Sub(n, s.first.big())
	n.Add(n, big.NewInt(1))
	if avoidBuggy && s.first.is4() {
		a, b := s.first.lo&0xffffffff, s.last.lo&0xffffffff
		bad := countEnding(a, b, 0) + countEnding(a, b, 0xff)
		n.Sub(n, new(big.Int).SetUint64(bad))
	}
	return n
}
