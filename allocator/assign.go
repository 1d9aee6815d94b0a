package allocator

import (
	"fmt"
	"strings"
)

// Assign gives the Service one address per family its request asks for and
// returns what it holds, primary family first. A Service that already
// holds addresses satisfying the request keeps them. On error nothing
// changes: the Service keeps what it held.
func (a *Allocator) Assign(req Request) ([]Assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out, err := a.assign(&req)
	if err != nil {
		return nil, fmt.Errorf("assign %s: %w", req.Service, err)
	}
	return out, nil
}

func (a *Allocator) assign(req *Request) ([]Assignment, error) {
	var w want
	if err := w.normalize(req); err != nil {
		return nil, err
	}
	s := a.services[req.Service]
	picks, n, err := a.plan(&w, s)
	if err != nil {
		return nil, err
	}
	return a.assignments(a.commit(&w, s, picks[:n])), nil
}

// plan picks an address per wanted family without changing anything and
// applies the family policy to the failures: PreferDualStack may end with
// one family, unless addresses were requested (then all must succeed).
func (a *Allocator) plan(w *want, s *service) (picks [2]ip128, n int, err error) {
	var buf [8]*poolState
	cands, cerr := a.candidates(w, buf[:0])
	var errs [2]error
	for i, f := range w.families() {
		x, err := a.pick(w, s, f, cands, cerr)
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", f, err)
			continue
		}
		picks[n] = x
		n++
	}
	switch {
	case n == 0:
		return picks, 0, joinErrs(errs)
	case (w.policy == RequireDualStack || w.asked != 0) && n < w.n:
		return picks, 0, joinErrs(errs) // every requested address, or both families
	}
	return picks, n, nil
}

func joinErrs(errs [2]error) error {
	switch {
	case errs[0] == nil:
		return errs[1]
	case errs[1] == nil:
		return errs[0]
	}
	return fmt.Errorf("%w; %w", errs[0], errs[1])
}

// pick chooses the address for family f: the requested one, the one s
// already holds if it still fits, a shared one, or the lowest free one.
func (a *Allocator) pick(w *want, s *service, f Family, cands []*poolState, cerr error) (ip128, error) {
	if x, ok := w.requested(f); ok {
		return x, a.checkRequested(w, s, x)
	}
	if s != nil && s.held(f) {
		x := s.addr(f)
		if a.keeps(w, s, x) {
			return x, nil
		}
	}
	if cerr != nil {
		return ip128{}, cerr
	}
	if x, ok := a.findShared(w, f, cands); ok {
		return x, nil
	}
	return a.findFree(f, cands)
}

// keeps reports whether s may keep x under request w.
func (a *Allocator) keeps(w *want, s *service, x ip128) bool {
	if p := w.pool; p != "" {
		if f := a.pools.owner(x); f == nil || f.pool.cfg.Name != p {
			return false
		}
	}
	return a.canJoin(x, s.key, w.share) == nil
}

// checkRequested checks a requested address: in the named pool if any,
// assignable from an eligible pool unless s holds it already, and free or
// shareable.
func (a *Allocator) checkRequested(w *want, s *service, x ip128) error {
	name := w.pool
	if name != "" && a.pools.byName[name] == nil {
		return fmt.Errorf("pool %q: %w", name, ErrUnknownPool)
	}
	f, ok := a.pools.find(x)
	switch {
	case f == nil && s.holds(x) && name == "":
		// held orphan: sticky
	case f == nil:
		return fmt.Errorf("%s: %w", x, ErrNotInAnyPool)
	case name != "" && f.pool.cfg.Name != name:
		return fmt.Errorf("%s is in pool %q, not %q: %w", x, f.pool.cfg.Name, name, ErrAddressNotInPool)
	case s.holds(x):
		// held: sticky, eligibility is not checked again
	case !ok:
		return fmt.Errorf("%s is avoided in pool %q (.0/.255): %w", x, f.pool.cfg.Name, ErrAddressNotInPool)
	case !a.eligible(w, f.pool):
		return fmt.Errorf("%s: pool %q: %w", x, f.pool.cfg.Name, ErrNoEligiblePool)
	}
	return a.canJoin(x, w.key, w.share)
}

func (a *Allocator) eligible(w *want, p *poolState) bool {
	return p.cfg.eligible(w.key.Namespace, w.nsLabels, w.svcLabels)
}

// candidates returns the pools that may hand out new addresses to w, best
// first: the named pool, or every eligible auto-assign pool.
func (a *Allocator) candidates(w *want, buf []*poolState) ([]*poolState, error) {
	if name := w.pool; name != "" {
		p := a.pools.byName[name]
		switch {
		case p == nil:
			return nil, fmt.Errorf("pool %q: %w", name, ErrUnknownPool)
		case !a.eligible(w, p):
			return nil, fmt.Errorf("pool %q: %w", name, ErrNoEligiblePool)
		}
		return append(buf, p), nil
	}
	for _, p := range a.pools.ranked {
		if !p.cfg.DisableAutoAssign && a.eligible(w, p) {
			buf = append(buf, p)
		}
	}
	if len(buf) == 0 {
		return nil, ErrNoEligiblePool
	}
	return buf, nil
}

// findShared returns the best address already used with w's sharing key
// that w may join: best pool first, then lowest address.
func (a *Allocator) findShared(w *want, f Family, cands []*poolState) (ip128, bool) {
	if w.share == nil {
		return ip128{}, false
	}
	for _, p := range cands {
		for _, x := range a.byKey[w.share.key] {
			fs := p.fams[f.index()]
			if fs != nil && x.family() == f && a.pools.owner(x) == fs &&
				a.canJoin(x, w.key, w.share) == nil {
				return x, true
			}
		}
	}
	return ip128{}, false
}

// findFree returns the lowest free address of family f in the best
// candidate pool that has one.
func (a *Allocator) findFree(f Family, cands []*poolState) (ip128, error) {
	var full []string
	for _, p := range cands {
		fs := p.fams[f.index()]
		if fs == nil {
			continue
		}
		if x, ok := fs.peek(a.byAddr); ok {
			return x, nil
		}
		full = append(full, p.cfg.Name)
	}
	if len(full) == 0 {
		return ip128{}, ErrFamilyUnavailable
	}
	// Name the pools, so the user knows which to grow; the failure path
	// only, so the hot path allocates nothing.
	return ip128{}, fmt.Errorf("%w: %s", ErrPoolExhausted, strings.Join(full, ", "))
}

// commit makes s (created if nil) hold exactly picks.
func (a *Allocator) commit(w *want, s *service, picks []ip128) *service {
	if s == nil {
		s = &service{key: w.key}
		a.services[s.key] = s
	} else if s.same(picks, w.share) {
		s.created = w.created
		return s
	}
	held, n := s.list()
	for _, x := range held[:n] {
		a.unhold(s, x)
	}
	s.flags, s.share, s.created = 0, w.share, w.created
	for _, x := range picks {
		a.hold(s, x)
	}
	return s
}

// same reports whether s holds exactly picks, in order, with share info sh.
func (s *service) same(picks []ip128, sh *shareInfo) bool {
	held, n := s.list()
	if n != len(picks) || !s.share.equal(sh) {
		return false
	}
	for i := range held[:n] {
		if held[i] != picks[i] {
			return false
		}
	}
	return true
}
