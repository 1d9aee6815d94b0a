package allocator

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestAddrHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h addrHeap
	set := map[ip128]bool{}
	for i := range 5000 {
		x := ip128{0, uint64(rng.IntN(300))}
		switch rng.IntN(3) {
		case 0, 1:
			h.push(x)
			set[x] = true
		case 2:
			h.remove(x)
			delete(set, x)
		}
		if i%97 == 0 {
			checkHeapAgainst(t, &h, set)
		}
	}
	checkHeapAgainst(t, &h, set)
	var drained []ip128
	for {
		x, ok := h.min()
		if !ok {
			break
		}
		drained = append(drained, x)
		h.remove(x)
	}
	if !slices.IsSortedFunc(drained, ip128.cmp) || len(drained) != len(set) {
		t.Fatalf("drained %d addresses out of order or count, want %d", len(drained), len(set))
	}
}

func checkHeapAgainst(t *testing.T, h *addrHeap, set map[ip128]bool) {
	t.Helper()
	if len(h.items) != len(set) || len(h.index) != len(set) {
		t.Fatalf("heap has %d items, %d index entries, want %d", len(h.items), len(h.index), len(set))
	}
	var lowest ip128
	first := true
	for x := range set {
		if !h.contains(x) {
			t.Fatalf("heap lost %s", x)
		}
		if first || x.less(lowest) {
			lowest, first = x, false
		}
	}
	if m, ok := h.min(); len(set) > 0 && (!ok || m != lowest) {
		t.Fatalf("min = %s, want %s", m, lowest)
	}
}

// TestReleasedReuseOrder releases many addresses in scrambled order and
// checks they come back lowest first.
func TestReleasedReuseOrder(t *testing.T) {
	a := newAlloc(t, Pool{Name: "p", Prefixes: prefixes("198.51.100.0/24")})
	for i := range 200 {
		if _, err := a.Assign(Request{Service: ServiceKey{"ns", string(rune('A' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if j := (i * 37) % 200; j%3 == 0 {
			a.Release(ServiceKey{"ns", string(rune('A' + j))})
		}
	}
	if err := a.check(); err != nil {
		t.Fatal(err)
	}
	prev := -1
	for i := range 67 {
		got, err := a.Assign(Request{Service: ServiceKey{"new", string(rune('A' + i))}})
		if err != nil {
			t.Fatal(err)
		}
		last := int(got[0].Addr.As4()[3])
		if last <= prev || last%3 != 0 {
			t.Fatalf("reuse %d got %s after .%d", i, got[0].Addr, prev)
		}
		prev = last
	}
	if err := a.check(); err != nil {
		t.Fatal(err)
	}
}
