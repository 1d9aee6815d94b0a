package allocator

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"sort"
)

// poolState is a validated pool with its allocation state per family.
type poolState struct {
	cfg  Pool
	fams [2]*famState // by Family.index; nil when the pool lacks the family
}

// famState is the allocation state of one family of one pool.
//
// Invariant: every assignable address below the cursor (cur in
// spans[curSpan]) is held or in freed; freed holds only free addresses.
// So the lowest free address is freed's minimum, or else the first address
// at or after the cursor that is neither held nor avoided.
type famState struct {
	pool    *poolState
	spans   []span // sorted, merged
	total   *big.Int
	inUse   uint64
	curSpan int // len(spans) when the cursor ran off the end
	cur     ip128
	freed   addrHeap
}

func newFamState(p *poolState, spans []span) *famState {
	f := &famState{pool: p, spans: spans, total: new(big.Int), cur: spans[0].first}
	for _, s := range spans {
		f.total.Add(f.total, spanTotal(s, p.cfg.AvoidBuggyIPs))
	}
	return f
}

// assignable reports whether x, inside one of the spans, may be handed out.
func (f *famState) assignable(x ip128) bool {
	return !f.pool.cfg.AvoidBuggyIPs || !x.buggy()
}

// advance moves the cursor past held and avoided addresses.
func (f *famState) advance(held map[ip128]*service) {
	for f.curSpan < len(f.spans) {
		if _, used := held[f.cur]; !used && f.assignable(f.cur) {
			return
		}
		f.step()
	}
}

func (f *famState) step() {
	if f.cur == f.spans[f.curSpan].last {
		f.curSpan++
		if f.curSpan < len(f.spans) {
			f.cur = f.spans[f.curSpan].first
		}
		return
	}
	f.cur = f.cur.next()
}

// belowCursor reports whether x lies before the cursor.
func (f *famState) belowCursor(x ip128) bool {
	return f.curSpan == len(f.spans) || x.less(f.cur)
}

// peek returns the lowest free address without taking it.
func (f *famState) peek(held map[ip128]*service) (ip128, bool) {
	if x, ok := f.freed.min(); ok {
		return x, true
	}
	f.advance(held)
	return f.cur, f.curSpan < len(f.spans)
}

// claim records that x, assignable and free until now, is held.
func (f *famState) claim(x ip128) {
	f.freed.remove(x)
	f.inUse++
}

// release records that x is free again.
func (f *famState) release(x ip128) {
	f.inUse--
	if f.belowCursor(x) {
		f.freed.push(x)
	}
}

// poolSet is an immutable, validated set of pools.
type poolSet struct {
	ranked []*poolState // by Priority, then Name
	byName map[string]*poolState
	table  []spanRef // every span of every pool, sorted
}

type spanRef struct {
	span
	fam *famState
}

func newPoolSet(pools []Pool) (poolSet, error) {
	ps := poolSet{byName: make(map[string]*poolState, len(pools))}
	for _, p := range pools {
		st, err := newPoolState(p)
		if err != nil {
			return poolSet{}, fmt.Errorf("pool %q: %w", p.Name, err)
		}
		if ps.byName[p.Name] != nil {
			return poolSet{}, fmt.Errorf("pool %q: %w: duplicate name", p.Name, ErrInvalidPool)
		}
		ps.byName[p.Name] = st
		ps.ranked = append(ps.ranked, st)
	}
	slices.SortFunc(ps.ranked, func(a, b *poolState) int {
		return cmp.Or(cmp.Compare(a.cfg.Priority, b.cfg.Priority), cmp.Compare(a.cfg.Name, b.cfg.Name))
	})
	return ps, ps.buildTable()
}

func newPoolState(p Pool) (*poolState, error) {
	spans, err := validatePool(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPool, err)
	}
	st := &poolState{cfg: clonePool(p)}
	for i, s := range spans {
		if len(s) > 0 {
			st.fams[i] = newFamState(st, s)
		}
	}
	return st, nil
}

// buildTable indexes every span and refuses overlaps between pools.
func (ps *poolSet) buildTable() error {
	for _, p := range ps.ranked {
		for _, f := range p.fams {
			for _, s := range f.spansOrNil() {
				ps.table = append(ps.table, spanRef{s, f})
			}
		}
	}
	slices.SortFunc(ps.table, func(a, b spanRef) int { return a.first.cmp(b.first) })
	for i := 1; i < len(ps.table); i++ {
		if a, b := ps.table[i-1], ps.table[i]; a.overlaps(b.span) {
			return fmt.Errorf("pools %q and %q: %w: they overlap at %s",
				a.fam.pool.cfg.Name, b.fam.pool.cfg.Name, ErrInvalidPool, b.first)
		}
	}
	return nil
}

func (f *famState) spansOrNil() []span {
	if f == nil {
		return nil
	}
	return f.spans
}

// find returns the pool family whose spans contain x, and whether x is
// assignable there. It returns nil outside every pool.
func (ps *poolSet) find(x ip128) (*famState, bool) {
	i := sort.Search(len(ps.table), func(i int) bool { return !ps.table[i].last.less(x) })
	if i == len(ps.table) || x.less(ps.table[i].first) {
		return nil, false
	}
	f := ps.table[i].fam
	return f, f.assignable(x)
}

// owner returns the pool family that may hand out x, or nil.
func (ps *poolSet) owner(x ip128) *famState {
	if f, ok := ps.find(x); ok {
		return f
	}
	return nil
}

func clonePool(p Pool) Pool {
	p.Prefixes = slices.Clone(p.Prefixes)
	p.Ranges = slices.Clone(p.Ranges)
	p.Namespaces = slices.Clone(p.Namespaces)
	p.NamespaceSelectors = cloneSelectors(p.NamespaceSelectors)
	p.ServiceSelectors = cloneSelectors(p.ServiceSelectors)
	return p
}
