package allocator

import (
	"fmt"
	"maps"
	"slices"
)

// check verifies the Allocator's internal invariants. Brute-force parts only
// run on small pools.
func (a *Allocator) check() error {
	for _, fn := range []func() error{a.checkServices, a.checkHolders, a.checkByKey, a.checkPools} {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

func (a *Allocator) checkServices() error {
	for k, s := range a.services {
		if s.key != k {
			return fmt.Errorf("service %s stored under %s", s.key, k)
		}
		if s.flags&(has4|has6) == 0 {
			return fmt.Errorf("service %s holds nothing", k)
		}
		xs, n := s.list()
		for _, x := range xs[:n] {
			if !slices.Contains(a.of(x), s) {
				return fmt.Errorf("service %s holds %s but is not a holder", k, x)
			}
		}
	}
	return nil
}

func (a *Allocator) checkHolders() error {
	if len(a.shared) > 0 {
		for x := range a.shared {
			if a.byAddr[x] == nil {
				return fmt.Errorf("shared %s has no first holder", x)
			}
		}
	}
	for x, first := range a.byAddr {
		hs := a.of(x)
		if hs[0] != first || (len(hs) == 1) != (a.shared[x] == nil) {
			return fmt.Errorf("%s: byAddr and shared disagree", x)
		}
		for i, s := range hs {
			if !s.holds(x) || a.services[s.key] != s {
				return fmt.Errorf("%s: holder %s does not hold it", x, s.key)
			}
			if i > 0 && hs[i-1].key.compare(s.key) >= 0 {
				return fmt.Errorf("%s: holders not sorted", x)
			}
			for _, o := range hs[:i] {
				if err := compatible(x, s.share, o); err != nil {
					return fmt.Errorf("bad sharing: %w", err)
				}
			}
		}
		_, orphan := a.orphans[x]
		if orphan != (a.pools.owner(x) == nil) {
			return fmt.Errorf("%s: orphan=%v, owner=%v", x, orphan, a.pools.owner(x) != nil)
		}
	}
	if len(a.orphans) > len(a.byAddr) {
		return fmt.Errorf("stale orphans")
	}
	return nil
}

func (a *Allocator) checkByKey() error {
	want := map[string][]ip128{}
	for x, s := range a.byAddr {
		if s.share != nil {
			want[s.share.key] = append(want[s.share.key], x)
		}
	}
	for k := range want {
		slices.SortFunc(want[k], ip128.cmp)
	}
	if !maps.EqualFunc(want, a.byKey, slices.Equal) {
		return fmt.Errorf("byKey = %v, want %v", a.byKey, want)
	}
	return nil
}

func (a *Allocator) checkPools() error {
	used := map[*famState]uint64{}
	for x := range a.byAddr {
		if f := a.pools.owner(x); f != nil {
			used[f]++
		}
	}
	for _, p := range a.pools.ranked {
		for _, f := range p.fams {
			if f == nil {
				continue
			}
			if f.inUse != used[f] {
				return fmt.Errorf("pool %s: inUse %d, want %d", p.cfg.Name, f.inUse, used[f])
			}
			if err := a.checkCursor(f); err != nil {
				return fmt.Errorf("pool %s: %w", p.cfg.Name, err)
			}
		}
	}
	return nil
}

// checkCursor checks the heap and, for small pools, that every free
// address below the cursor is in the heap.
func (a *Allocator) checkCursor(f *famState) error {
	h := &f.freed
	for i, x := range h.items {
		if h.index[x] != i || i > 0 && x.less(h.items[(i-1)/2]) {
			return fmt.Errorf("heap broken at %d", i)
		}
		if a.byAddr[x] != nil || a.pools.owner(x) != f || !f.belowCursor(x) {
			return fmt.Errorf("heap holds %s, not free below cursor", x)
		}
	}
	if len(h.index) != len(h.items) {
		return fmt.Errorf("heap index size %d, items %d", len(h.index), len(h.items))
	}
	return f.eachSmall(func(x ip128) error {
		if f.belowCursor(x) && a.byAddr[x] == nil && !h.contains(x) {
			return fmt.Errorf("free %s below cursor %s but not in heap", x, f.cur)
		}
		return nil
	})
}

// eachSmall calls fn for every assignable address of f, if f is small.
func (f *famState) eachSmall(fn func(ip128) error) error {
	if f.total.BitLen() > 12 {
		return nil
	}
	for _, s := range f.spans {
		for x := s.first; ; x = x.next() {
			if f.assignable(x) {
				if err := fn(x); err != nil {
					return err
				}
			}
			if x == s.last {
				break
			}
		}
	}
	return nil
}

// lowestFree finds the lowest free address of a small pool by brute force.
func (a *Allocator) lowestFree(f *famState) (ip128, bool) {
	var found ip128
	ok := false
	f.eachSmall(func(x ip128) error {
		if !ok && a.byAddr[x] == nil {
			found, ok = x, true
		}
		return nil
	})
	return found, ok
}

// snapshot returns what every Service holds.
func (a *Allocator) snapshot() map[ServiceKey][]Assignment {
	out := map[ServiceKey][]Assignment{}
	for k, s := range a.services {
		out[k] = a.assignments(s)
	}
	return out
}
