package members

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%d", i+1)
	}
	return out
}

// addrs returns n addresses from the L2 pool range and beyond, IPv4 and
// IPv6 alternating.
func addrs(n int) []netip.Addr {
	v4 := netip.MustParseAddr("198.18.0.0")
	v6 := netip.MustParseAddr("2001:db8:100::")
	out := make([]netip.Addr, 0, n)
	for i := range n {
		if i%2 == 0 {
			v4 = v4.Next()
			out = append(out, v4)
		} else {
			v6 = v6.Next()
			out = append(out, v6)
		}
	}
	return out
}

func TestOwnerTable(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.200")
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"none", nil, ""},
		{"empty names only", []string{"", ""}, ""},
		{"one", []string{"node1"}, "node1"},
		{"one with empty and duplicate", []string{"", "node2", "node2"}, "node2"},
		{"three", nodes(3), Ranking(a, nodes(3))[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Owner(a, tt.candidates)); diff != "" {
				t.Errorf("Owner (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRankingGolden pins the hash: speakers of different versions must
// agree on owners during a rolling upgrade, so these may never change.
func TestRankingGolden(t *testing.T) {
	cands := nodes(4)
	tests := []struct {
		addr string
		want []string
	}{
		{"198.51.100.200", []string{"node4", "node2", "node3", "node1"}},
		{"198.51.100.201", []string{"node2", "node3", "node4", "node1"}},
		{"198.51.100.202", []string{"node4", "node2", "node1", "node3"}},
		{"203.0.113.7", []string{"node3", "node4", "node2", "node1"}},
		{"2001:db8:100::200", []string{"node2", "node4", "node3", "node1"}},
		{"::ffff:198.51.100.200", []string{"node3", "node2", "node1", "node4"}},
	}
	for _, tt := range tests {
		got := Ranking(netip.MustParseAddr(tt.addr), cands)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Ranking(%s) changed (-want +got):\n%s", tt.addr, diff)
		}
	}
}

func TestRankingDeterministicAndOrderFree(t *testing.T) {
	cands := nodes(7)
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range addrs(200) {
		want := Ranking(a, cands)
		shuffled := slices.Clone(cands)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(want, Ranking(a, shuffled)); diff != "" {
			t.Fatalf("Ranking(%s) depends on input order (-want +got):\n%s", a, diff)
		}
		if got := Owner(a, shuffled); got != want[0] {
			t.Fatalf("Owner(%s) = %q, Ranking starts with %q", a, got, want[0])
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(cands)), slices.Sorted(slices.Values(want))); diff != "" {
			t.Fatalf("Ranking(%s) is not a permutation (-want +got):\n%s", a, diff)
		}
	}
}

func TestFamiliesDiffer(t *testing.T) {
	v4 := netip.MustParseAddr("198.51.100.200")
	mapped := netip.AddrFrom16(v4.As16())
	if weight(v4, "node1") == weight(mapped, "node1") {
		t.Errorf("IPv4 and IPv4-mapped IPv6 address weigh the same")
	}
}

// TestMinimalMovement: removing a node moves only the addresses it owned;
// adding it back moves exactly those back.
func TestMinimalMovement(t *testing.T) {
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprint(n, " nodes"), func(t *testing.T) {
			all := nodes(n)
			gone := all[1]
			rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == gone })
			moved := 0
			for _, a := range addrs(10000) {
				before, after := Owner(a, all), Owner(a, rest)
				switch {
				case before == gone:
					moved++
					if after == gone || after == "" {
						t.Fatalf("%s: no new owner", a)
					}
				case before != after:
					t.Fatalf("%s moved from %s to %s though %s left", a, before, after, gone)
				}
				if want := Ranking(a, all); after != slices.DeleteFunc(want, func(s string) bool { return s == gone })[0] {
					t.Fatalf("%s: new owner %s is not the runner-up", a, after)
				}
			}
			t.Logf("%d of 10000 addresses moved when %s left %d nodes", moved, gone, n)
		})
	}
}

func TestBalance(t *testing.T) {
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprint(n, " nodes"), func(t *testing.T) {
			count := map[string]int{}
			for _, a := range addrs(10000) {
				count[Owner(a, nodes(n))]++
			}
			fair := 10000.0 / float64(n)
			for _, name := range nodes(n) {
				if c := float64(count[name]); c < 0.85*fair || c > 1.15*fair {
					t.Errorf("%s owns %v addresses, fair share %v (±15%%)", name, c, fair)
				}
			}
			t.Logf("owners: %v", count)
		})
	}
}

func BenchmarkOwner(b *testing.B) {
	cands := nodes(10)
	as := addrs(1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Owner(as[i%len(as)], cands)
	}
}
