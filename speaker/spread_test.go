package speaker

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/speaker/members"
)

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%d", i+1)
	}
	return out
}

// heaviestPair is the address of addrs and the node of nodes whose
// rendezvous weight is the heaviest: Spread gives it that node first.
func heaviestPair(addrs []netip.Addr, nodes []string) (netip.Addr, string) {
	var ba netip.Addr
	var bn string
	var bw uint64
	for _, a := range addrs {
		for _, n := range nodes {
			if w := members.Weight(a, n); bn == "" || w > bw {
				ba, bn, bw = a, n, w
			}
		}
	}
	return ba, bn
}

func TestSpread(t *testing.T) {
	a1, a2, a3 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201"), netip.MustParseAddr("198.51.100.202")
	v6 := netip.MustParseAddr("2001:db8:100::1")
	all := []string{"node1", "node2", "node3"}
	// Two addresses on two nodes: the heaviest pair decides, the other
	// address gets the other node.
	ha, hn := heaviestPair([]netip.Addr{a1, a2}, all[:2])
	other := map[netip.Addr]netip.Addr{a1: a2, a2: a1}[ha]
	otherNode := map[string]string{"node1": "node2", "node2": "node1"}[hn]
	// A pinned address and one that may go anywhere: the one that may go
	// anywhere makes room for the pinned one, whatever the weights.
	for _, tc := range []struct {
		name  string
		cands map[netip.Addr][]string
		want  map[netip.Addr]string
	}{
		{"none", nil, map[netip.Addr]string{}},
		{"an address without candidates has no owner", map[netip.Addr][]string{a1: nil}, map[netip.Addr]string{}},
		{"one address: its first-ranked node, as with Hash", map[netip.Addr][]string{a1: all},
			map[netip.Addr]string{a1: members.Owner(a1, all)}},
		{"one IPv6 address", map[netip.Addr][]string{v6: all}, map[netip.Addr]string{v6: members.Owner(v6, all)}},
		{"two addresses, two nodes: one each", map[netip.Addr][]string{a1: all[:2], a2: all[:2]},
			map[netip.Addr]string{ha: hn, other: otherNode}},
		{"a pinned address gets its node; the free one moves aside",
			map[netip.Addr][]string{a1: {"node1"}, a2: {"node1", "node2"}},
			map[netip.Addr]string{a1: "node1", a2: "node2"}},
		{"a chain of moves makes room",
			map[netip.Addr][]string{a1: {"node1"}, a2: {"node1", "node2"}, a3: {"node2", "node3"}},
			map[netip.Addr]string{a1: "node1", a2: "node2", a3: "node3"}},
		{"no room anywhere: over the share on the only node",
			map[netip.Addr][]string{a1: {"node1"}, a2: {"node1"}, a3: {"node2"}},
			map[netip.Addr]string{a1: "node1", a2: "node1", a3: "node2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Spread(tc.cands)); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
		})
	}
}

// randomAddrs are n distinct addresses of the L2 segment's documentation
// range and 2001:db8::/32.
func randomAddrs(rng *rand.Rand, n int) []netip.Addr {
	seen := map[netip.Addr]bool{}
	for len(seen) < n {
		var a netip.Addr
		if rng.IntN(4) == 0 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(rng.IntN(256)), 15: byte(rng.IntN(256))})
		} else {
			a = netip.AddrFrom4([4]byte{198, 51, byte(100 + rng.IntN(2)), byte(rng.IntN(256))})
		}
		seen[a] = true
	}
	return slices.SortedFunc(maps.Keys(seen), netip.Addr.Compare)
}

func allOn(addrs []netip.Addr, nodes []string) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for _, a := range addrs {
		out[a] = nodes
	}
	return out
}

func moved(before, after map[netip.Addr]string, except string) int {
	n := 0
	for a, o := range before {
		if o != except && after[a] != o {
			n++
		}
	}
	return n
}

// TestSpreadProperties checks, over random clusters of 2 to 13 nodes and
// 1 to 150 addresses, that Spread is balanced (no node over the share,
// every address on one of its candidates), the same whatever the map
// order, and stable: one more address moves at most as many others as
// there are nodes, and a node's failure moves its addresses and at most
// two shares of others.
func TestSpreadProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2026))
	var trials, addMoves, deathMoves, deadOwned int
	for _, n := range []int{2, 3, 4, 5, 8, 13} {
		nodes := nodeNames(n)
		for range 60 {
			addrs := randomAddrs(rng, 1+rng.IntN(150))
			base := addrs[1:]
			if len(base) == 0 {
				continue
			}
			trials++
			before := Spread(allOn(base, nodes))
			share := (len(base) + n - 1) / n
			load := map[string]int{}
			for _, a := range base {
				o, ok := before[a]
				if !ok || !slices.Contains(nodes, o) {
					t.Fatalf("%d nodes, %d addresses: %s owned by %q", n, len(base), a, o)
				}
				load[o]++
			}
			for node, l := range load {
				if l > share {
					t.Fatalf("%d nodes, %d addresses: %s owns %d, share %d", n, len(base), node, l, share)
				}
			}
			if again := Spread(allOn(base, reversed(nodes))); !maps.Equal(before, again) {
				t.Fatalf("%d nodes, %d addresses: another order, other owners", n, len(base))
			}

			after := Spread(allOn(addrs, nodes))
			m := moved(before, after, "")
			if m > n {
				t.Errorf("%d nodes, %d addresses: one more address moved %d others, more than the %d nodes", n, len(base), m, n)
			}
			addMoves += m

			dead := nodes[rng.IntN(n)]
			if n == 1 {
				continue
			}
			survivors := slices.DeleteFunc(slices.Clone(nodes), func(s string) bool { return s == dead })
			down := Spread(allOn(base, survivors))
			m = moved(before, down, dead)
			if limit := 2 * (len(base) + n - 2) / (n - 1); m > limit {
				t.Errorf("%d nodes, %d addresses: %s's death moved %d others, more than two shares (%d)", n, len(base), dead, m, limit)
			}
			deathMoves += m
			deadOwned += load[dead]
			for a, o := range before {
				if o == dead && down[a] == dead {
					t.Fatalf("%s still owned by dead %s", a, dead)
				}
			}
		}
	}
	// On average an added address moves at most one and a half others,
	// and a death moves others fewer than a fifth of the dead node's
	// (a sorted round robin would move half of them all).
	if 2*addMoves > 3*trials || 5*deathMoves > deadOwned {
		t.Errorf("%d trials: additions moved %d others; deaths moved %d others and %d of the dead nodes'", trials, addMoves, deathMoves, deadOwned)
	}
	t.Logf("%d trials: additions moved %d others; deaths moved %d others and %d of the dead nodes'", trials, addMoves, deathMoves, deadOwned)
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// BenchmarkPlan plans 1,000 and 20,000 Services on 13 nodes, by hash
// and balanced: a balanced target's change plans every target again.
func BenchmarkPlan(b *testing.B) {
	seg := netip.MustParsePrefix("2001:db8:100::/64")
	var live []Member
	nodes := map[string][]string{}
	for _, n := range nodeNames(13) {
		live = append(live, Member{Name: n, Ifaces: []Iface{{Name: "eth1", Prefixes: []netip.Prefix{seg}}}})
		nodes[n] = nil
	}
	for _, size := range []int{1000, 20000} {
		for _, balanced := range []bool{false, true} {
			targets := make([]Target, size)
			for i := range targets {
				a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 14: byte(i >> 8), 15: byte(i)}
				targets[i] = Target{Addr: netip.AddrFrom16(a), Service: fmt.Sprintf("default/svc%d", i), Nodes: nodes, Balanced: balanced}
			}
			b.Run(fmt.Sprintf("services=%d/balanced=%t", size, balanced), func(b *testing.B) {
				for b.Loop() {
					if got := Plan(targets, live); len(got) != size {
						b.Fatalf("%d owners, want %d", len(got), size)
					}
				}
			})
		}
	}
}
