package members

import (
	"cmp"
	"net/netip"
	"slices"
)

// Owner returns the member that should announce addr among candidates (the
// live and eligible nodes, computed by the caller), or "" when there is none.
//
// It is rendezvous (highest-random-weight) hashing: every candidate gets a
// weight from a stable hash of (addr, name) and the heaviest wins. Every
// speaker computing it over the same inputs gets the same answer, whatever
// the order of candidates; when a node leaves, only the addresses it owned
// move, and they spread over the others. Empty names and duplicates are
// ignored.
func Owner(addr netip.Addr, candidates []string) string {
	var best string
	var bestW uint64
	for _, c := range candidates {
		if c == "" {
			continue
		}
		w := weight(addr, c)
		if best == "" || heavier(w, c, bestW, best) {
			best, bestW = c, w
		}
	}
	return best
}

// Ranking returns candidates (without empty names and duplicates) in the
// order they would take over addr: Ranking(addr, c)[0] == Owner(addr, c).
// For status and debugging.
func Ranking(addr netip.Addr, candidates []string) []string {
	type ranked struct {
		name string
		w    uint64
	}
	rs := make([]ranked, 0, len(candidates))
	seen := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		if c == "" || seen[c] {
			continue
		}
		seen[c] = true
		rs = append(rs, ranked{c, weight(addr, c)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.w != b.w {
			return -cmp.Compare(a.w, b.w)
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
	}
	return out
}

// Weight is the rendezvous weight of name for addr, the one Owner and
// Ranking order by (heaviest first): for callers that balance owners over
// many addresses (see speaker's Plan).
func Weight(addr netip.Addr, name string) uint64 { return weight(addr, name) }

// heavier orders by weight, then by name so that a (vanishingly rare) tie is
// still decided the same way everywhere.
func heavier(w uint64, name string, bestW uint64, best string) bool {
	if w != bestW {
		return w > bestW
	}
	return name < best
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// weight is FNV-1a 64 over the address (16 bytes, IPv4 mapped, plus a family
// byte so 192.0.2.1 and ::ffff:192.0.2.1 differ), a separator and the node
// name, finished with the murmur3 fmix64 mixer: FNV alone lets names that
// differ only in their last byte ("node1", "node2") produce correlated
// weights, which skews the balance. Stable across processes, versions and
// architectures: never change it without a migration plan, or speakers of
// different versions will disagree on owners during an upgrade.
func weight(addr netip.Addr, name string) uint64 {
	h := uint64(fnvOffset)
	a16 := addr.As16()
	var fam byte = 6
	if addr.Is4() {
		fam = 4
	}
	h = fnvByte(h, fam)
	for _, b := range a16 {
		h = fnvByte(h, b)
	}
	h = fnvByte(h, 0)
	for i := 0; i < len(name); i++ {
		h = fnvByte(h, name[i])
	}
	return fmix64(h)
}

func fnvByte(h uint64, b byte) uint64 {
	return (h ^ uint64(b)) * fnvPrime
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
