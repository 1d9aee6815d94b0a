package relay

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func names(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("backend-%d", i))
	}
	return out
}

// keys are 100k client address:port pairs.
func keys() []uint64 {
	var out []uint64
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		out = append(out, HashKey(netip.AddrPortFrom(a, uint16(1024+i%7)), false))
	}
	return out
}

func mustTable(t testing.TB, bs []string) *Table {
	t.Helper()
	tb, err := NewTable(bs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestMaglevDeterministic(t *testing.T) {
	bs := names(7)
	a := mustTable(t, bs)
	rev := slices.Clone(bs)
	slices.Reverse(rev)
	b := mustTable(t, rev) // another "process", other order
	if diff := cmp.Diff(a.entries, b.entries); diff != "" {
		t.Fatalf("tables differ (-a +b):\n%s", diff)
	}
	// Fixed values: a change here breaks agreement between relay versions.
	k := HashKey(netip.MustParseAddrPort("198.18.0.10:40000"), false)
	if got, want := a.Lookup(k), mustTable(t, bs).Lookup(k); got != want {
		t.Fatalf("lookup %q != %q", got, want)
	}
	if HashKey(netip.MustParseAddrPort("192.0.2.1:1"), true) != HashKey(netip.MustParseAddrPort("[::ffff:192.0.2.1]:2"), true) {
		t.Fatal("mapped and plain IPv4 hash differently")
	}
}

func TestMaglevBalance(t *testing.T) {
	ks := keys()
	for n := 3; n <= 10; n++ {
		tb := mustTable(t, names(n))
		count := map[string]int{}
		for _, k := range ks {
			count[tb.Lookup(k)]++
		}
		fair := float64(len(ks)) / float64(n)
		for name, c := range count {
			if dev := (float64(c) - fair) / fair; dev > 0.1 || dev < -0.1 {
				t.Errorf("n=%d: %s has %d keys, fair share %.0f (%.1f%%)", n, name, c, fair, 100*dev)
			}
		}
		if len(count) != n {
			t.Errorf("n=%d: %d backends used", n, len(count))
		}
	}
}

func TestMaglevMovement(t *testing.T) {
	ks := keys()
	for n := 3; n <= 10; n++ {
		before := mustTable(t, names(n))
		added := mustTable(t, names(n+1))
		removed := mustTable(t, names(n)[1:])
		var movedAdd, movedRemove int
		for _, k := range ks {
			if before.Lookup(k) != added.Lookup(k) {
				movedAdd++
			}
			if before.Lookup(k) != removed.Lookup(k) {
				movedRemove++
			}
		}
		check := func(what string, moved int, ideal float64) {
			frac := float64(moved) / float64(len(ks))
			if frac < ideal*0.8 || frac > ideal*1.5 {
				t.Errorf("n=%d %s: %.3f of keys moved, want about %.3f", n, what, frac, ideal)
			}
		}
		check("add", movedAdd, 1/float64(n+1))
		check("remove", movedRemove, 1/float64(n))
	}
}

func TestMaglevEdges(t *testing.T) {
	if _, err := NewTable(names(3), 100); err == nil {
		t.Error("non-prime size accepted")
	}
	tb, err := NewTable(nil, 7)
	if err != nil || tb.Lookup(1) != "" {
		t.Errorf("empty table: %v %q", err, tb.Lookup(1))
	}
	one := mustTable(t, []string{"a", "a"})
	if diff := cmp.Diff([]string{"a"}, one.Backends()); diff != "" {
		t.Error(diff)
	}
}

func BenchmarkMaglevLookup(b *testing.B) {
	tb := mustTable(b, names(10))
	c := netip.MustParseAddrPort("198.18.0.10:40000")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = tb.Lookup(HashKey(netip.AddrPortFrom(c.Addr(), uint16(i)), false))
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	for b.Loop() {
		mustTable(b, names(10))
	}
}

// classicEntries is Maglev's population as the paper gives it, without
// weights: relays of an earlier version built their tables so.
func classicEntries(bs []string, m int) []int32 {
	names := slices.Sorted(slices.Values(bs))
	um := uint64(m)
	entries := make([]int32, m)
	for i := range entries {
		entries[i] = -1
	}
	next := make([]uint64, len(names))
	filled := 0
	for {
		for i, n := range names {
			offset, skip := hashString(n, 0x5bd1e995)%um, hashString(n, 0x27d4eb2f)%(um-1)+1
			slot := (offset + next[i]*skip) % um
			for entries[slot] >= 0 {
				next[i]++
				slot = (offset + next[i]*skip) % um
			}
			entries[slot] = int32(i)
			next[i]++
			if filled++; filled == m {
				return entries
			}
		}
	}
}

// TestMaglevEqualWeightsAsClassic: equal weights, whatever their value,
// give the unweighted table, so relays of this version and the earlier
// one agree during an upgrade.
func TestMaglevEqualWeightsAsClassic(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 10, 64} {
		for _, w := range []uint32{1, 5, 1_000_000} {
			ws := map[string]uint32{}
			for _, name := range names(n) {
				ws[name] = w
			}
			tb, err := NewWeightedTable(ws, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(classicEntries(names(n), DefaultTableSize), tb.entries); diff != "" {
				t.Fatalf("n=%d weight %d: table differs from the classic one (-classic +weighted):\n%s", n, w, diff)
			}
		}
	}
}

// shares counts the keys each backend gets, as fractions.
func shares(tb *Table, ks []uint64) map[string]float64 {
	out := map[string]float64{}
	for _, k := range ks {
		out[tb.Lookup(k)] += 1 / float64(len(ks))
	}
	return out
}

func TestMaglevWeightedDistribution(t *testing.T) {
	ks := keys()
	for _, tc := range []struct {
		name    string
		weights map[string]uint32
	}{
		{"90/10", map[string]uint32{"a": 90, "b": 10}},
		{"1/2/3/4", map[string]uint32{"a": 1, "b": 2, "c": 3, "d": 4}},
		{"one heavy", map[string]uint32{"a": 50, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}},
		{"scaled per endpoint", map[string]uint32{"10.0.0.1": 349525, "10.0.0.2": 349525, "10.0.0.3": 349525, "10.0.1.1": 1}},
		{"a drained", map[string]uint32{"a": 0, "b": 1, "c": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := NewWeightedTable(tc.weights, 0)
			if err != nil {
				t.Fatal(err)
			}
			var total float64
			for _, w := range tc.weights {
				total += float64(w)
			}
			got := shares(tb, ks)
			for name, w := range tc.weights {
				want := float64(w) / total
				// Keys are a sample: 1 point of the whole, or a tenth of
				// the backend's share, whichever is larger.
				if tol := max(0.01, want/10); got[name] < want-tol || got[name] > want+tol {
					t.Errorf("%s: %.4f of keys, want %.4f", name, got[name], want)
				}
				if w == 0 && got[name] != 0 {
					t.Errorf("%s of weight 0 got %.4f of keys", name, got[name])
				}
			}
			// The table itself holds the shares to a slot.
			slots := map[string]int{}
			for i := range tb.size() {
				slots[tb.owner(i)]++
			}
			for name, w := range tc.weights {
				if want := float64(w) / total * float64(tb.size()); float64(slots[name]) < want-1 || float64(slots[name]) > want+1 {
					t.Errorf("%s: %d slots, want %.1f", name, slots[name], want)
				}
			}
		})
	}
}

// TestMaglevWeightChangeMovement: changing one backend's weight moves
// little more than the share that changed hands.
func TestMaglevWeightChangeMovement(t *testing.T) {
	ks := keys()
	for _, tc := range []struct {
		name          string
		before, after map[string]uint32
	}{
		{"one doubled", map[string]uint32{"a": 1, "b": 1, "c": 1, "d": 1}, map[string]uint32{"a": 2, "b": 1, "c": 1, "d": 1}},
		{"canary 1 to 10", map[string]uint32{"a": 99, "b": 1}, map[string]uint32{"a": 90, "b": 10}},
		{"one drained", map[string]uint32{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, map[string]uint32{"a": 1, "b": 1, "c": 1, "d": 1, "e": 0}},
		{"one of ten halved", weightsOf(10, 4), func() map[string]uint32 { w := weightsOf(10, 4); w["backend-3"] = 2; return w }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := NewWeightedTable(tc.before, 0)
			if err != nil {
				t.Fatal(err)
			}
			after, err := NewWeightedTable(tc.after, 0)
			if err != nil {
				t.Fatal(err)
			}
			sb, sa := shares(before, ks), shares(after, ks)
			// The least any table can move: the shares gained.
			var ideal float64
			for name := range tc.after {
				ideal += max(0, sa[name]-sb[name])
			}
			var moved float64
			for _, k := range ks {
				if before.Lookup(k) != after.Lookup(k) {
					moved += 1 / float64(len(ks))
				}
			}
			if moved > 1.6*ideal+0.01 {
				t.Errorf("%.4f of keys moved, the shares that changed are %.4f", moved, ideal)
			}
			t.Logf("moved %.4f, shares changed %.4f", moved, ideal)
		})
	}
}

func weightsOf(n int, w uint32) map[string]uint32 {
	out := map[string]uint32{}
	for _, name := range names(n) {
		out[name] = w
	}
	return out
}

func TestMaglevWeightedEdges(t *testing.T) {
	tb, err := NewWeightedTable(map[string]uint32{"a": 0}, 7)
	if err != nil || tb.Lookup(1) != "" || len(tb.Backends()) != 0 {
		t.Errorf("only weight 0: %v %q %v", err, tb.Lookup(1), tb.Backends())
	}
	if _, err := NewWeightedTable(map[string]uint32{"a": 1}, 8); err == nil {
		t.Error("non-prime size accepted")
	}
	// The largest weights do not overflow.
	tb, err = NewWeightedTable(map[string]uint32{"a": ^uint32(0), "b": ^uint32(0), "c": 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := shares(tb, keys())
	if s["a"] < 0.45 || s["b"] < 0.45 {
		t.Errorf("max weights: %v", s)
	}
}

func BenchmarkMaglevBuildWeighted(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		ws := map[string]uint32{}
		for i, name := range names(n) {
			ws[name] = uint32(1 + i%10)
		}
		ws["backend-0"] = 1000 // one heavy backend: the others drop out early
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewWeightedTable(ws, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
