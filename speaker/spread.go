package speaker

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/pier-lb/pier/speaker/members"
)

// Spread picks one owner for each address among its candidate nodes so
// that no node owns more than its share, ceil(addresses / nodes), while a
// candidate of the address has room. It is the stable assignment of the
// rendezvous weights (members.Weight): pairs (address, node) are taken
// heaviest first, each address by the first node that still has room, so
// an address goes to the node highest in its own ranking that is not
// filled by addresses that rank that node higher. An address whose
// candidates are all full (possible only when the addresses' candidate
// sets differ) takes the place of an address that can move to a node with
// room (see room.place), or else goes to its least loaded candidate, ties
// to the heavier.
//
// The result depends on the addresses and candidates alone, not on any
// order, so every speaker computes the same owners. Adding an address or
// a node, or losing one, moves few other addresses: only those pushed
// along a chain of full nodes, and those a changed share lets move.
func Spread(cands map[netip.Addr][]string) map[netip.Addr]string {
	addrs := slices.SortedFunc(maps.Keys(cands), netip.Addr.Compare)
	set := map[string]bool{}
	for _, a := range addrs {
		for _, n := range cands[a] {
			set[n] = true
		}
	}
	names := slices.Sorted(maps.Keys(set))
	owners := make(map[netip.Addr]string, len(cands))
	if len(names) == 0 {
		return owners
	}
	// Indexes into addrs and names: sorting them is what costs.
	type pair struct {
		w          uint64
		addr, node int32
	}
	pairs := make([]pair, 0, len(addrs)*len(names))
	for i, a := range addrs {
		for _, n := range cands[a] {
			j, _ := slices.BinarySearch(names, n)
			pairs = append(pairs, pair{members.Weight(a, n), int32(i), int32(j)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		switch {
		case a.w != b.w:
			return -cmp.Compare(a.w, b.w)
		case a.addr != b.addr:
			return cmp.Compare(a.addr, b.addr)
		}
		return cmp.Compare(a.node, b.node)
	})
	share := (len(addrs) + len(names) - 1) / len(names)
	load := make([]int, len(names))
	owner := make([]int32, len(addrs))
	for i := range owner {
		owner[i] = -1
	}
	for _, p := range pairs {
		if owner[p.addr] >= 0 || load[p.node] >= share {
			continue
		}
		owner[p.addr] = p.node
		load[p.node]++
	}
	loads := make(map[string]int, len(names))
	for i, a := range addrs {
		if owner[i] >= 0 {
			owners[a] = names[owner[i]]
			loads[names[owner[i]]]++
		}
	}
	r := &room{cands: cands, owners: owners, load: loads, share: share}
	for i, a := range addrs {
		if owner[i] >= 0 || len(cands[a]) == 0 {
			continue
		}
		if !r.place(a) {
			best := leastLoaded(a, cands[a], loads)
			owners[a] = best
			loads[best]++
		}
	}
	return owners
}

// room makes room for an address whose candidates are full, by moving
// addresses to other candidates of theirs.
type room struct {
	cands  map[netip.Addr][]string
	owners map[netip.Addr]string
	load   map[string]int
	share  int
}

// place looks, breadth first, for a chain from addr's candidates through
// full nodes to a node with room: each full node on it hands one of its
// addresses to the next node, which that address also allows, and addr
// takes the first node's place. false when there is none.
func (r *room) place(addr netip.Addr) bool {
	type step struct {
		from  string // the node the address leaves
		moved netip.Addr
	}
	held := map[string][]netip.Addr{}
	for a, n := range r.owners {
		held[n] = append(held[n], a)
	}
	prev := map[string]step{}
	var queue []string
	for _, n := range members.Ranking(addr, r.cands[addr]) {
		prev[n] = step{}
		queue = append(queue, n)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if r.load[n] < r.share {
			r.load[n]++ // the end of the chain; the others keep their load
			for s := prev[n]; s.from != ""; s = prev[s.from] {
				r.owners[s.moved] = n
				n = s.from
			}
			r.owners[addr] = n
			return true
		}
		list := held[n]
		slices.SortFunc(list, netip.Addr.Compare)
		for _, a := range list {
			for _, m := range members.Ranking(a, r.cands[a]) {
				if _, seen := prev[m]; !seen {
					prev[m] = step{from: n, moved: a}
					queue = append(queue, m)
				}
			}
		}
	}
	return false
}

// leastLoaded is the candidate of addr with the least load, ties broken
// by the heavier rendezvous weight, then by name.
func leastLoaded(addr netip.Addr, names []string, load map[string]int) string {
	return slices.MinFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(load[a], load[b]), -cmp.Compare(members.Weight(addr, a), members.Weight(addr, b)), strings.Compare(a, b))
	})
}
