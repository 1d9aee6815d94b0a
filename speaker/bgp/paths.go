package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
)

// SetPaths makes the announced paths equal to paths, adding and
// withdrawing only the differences; it never resets a session. Prefixes
// must be unique (ErrDuplicatePrefix).
func (a *Announcer) SetPaths(ctx context.Context, paths []Path) error {
	want, err := normalizePaths(paths)
	if err != nil {
		return err
	}
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.mu.Unlock()
	withdraw, announce := a.diffPaths(want)
	var errs []error
	// Withdraw under the old prefix sets, so peers that had the path hear
	// of it; announce under the new ones.
	for _, pfx := range withdraw {
		errs = append(errs, a.withdraw(ctx, pfx))
	}
	errs = append(errs, a.syncSets(ctx, want))
	for _, p := range announce {
		errs = append(errs, a.announce(ctx, p))
	}
	a.opts.Metrics.setAnnounced(len(a.paths))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(withdraw)+len(announce) > 0 {
		a.log.Debug("paths updated", "withdrawn", len(withdraw), "announced", len(announce), "total", len(a.paths))
	}
	return nil
}

// diffPaths returns the prefixes to withdraw (gone, or their peer list
// changed) and the paths to announce (new, changed, or re-peered).
func (a *Announcer) diffPaths(want map[netip.Prefix]*Path) (withdraw []netip.Prefix, announce []*Path) {
	for pfx, old := range a.paths {
		if p, ok := want[pfx]; !ok || !slices.Equal(old.Peers, p.Peers) {
			withdraw = append(withdraw, pfx)
		}
	}
	for pfx, p := range want {
		old, ok := a.paths[pfx]
		if !ok || !slices.Equal(old.Peers, p.Peers) || !sameAttrs(old, p) {
			announce = append(announce, p)
		}
	}
	sortPrefixes(withdraw)
	slices.SortFunc(announce, func(x, y *Path) int { return comparePrefix(x.Prefix, y.Prefix) })
	return withdraw, announce
}

func comparePrefix(x, y netip.Prefix) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return x.Bits() - y.Bits()
}

func sortPrefixes(ps []netip.Prefix) { slices.SortFunc(ps, comparePrefix) }

// withdraw removes the path announced for pfx. Its gobgp form is made
// again rather than kept: at 20,000 paths the kept forms were a third of
// the announcer's heap.
func (a *Announcer) withdraw(ctx context.Context, pfx netip.Prefix) error {
	ap, err := a.paths[pfx].apiPath()
	if err != nil {
		return fmt.Errorf("withdraw %s: %w", pfx, err)
	}
	err = a.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: ap.Family, Path: ap})
	if err != nil {
		return fmt.Errorf("withdraw %s: %w", pfx, err)
	}
	delete(a.paths, pfx)
	a.opts.Metrics.update("withdraw")
	return nil
}

func (a *Announcer) announce(ctx context.Context, p *Path) error {
	ap, err := p.apiPath()
	if err != nil {
		return err
	}
	if _, err := a.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: ap}); err != nil {
		return fmt.Errorf("announce %s: %w", p.Prefix, err)
	}
	a.paths[p.Prefix] = p
	a.opts.Metrics.update("announce")
	return nil
}

// syncSets makes every peer's prefix sets hold the wanted prefixes that go
// to it.
func (a *Announcer) syncSets(ctx context.Context, want map[netip.Prefix]*Path) error {
	var errs []error
	for name, have := range a.sets {
		var add, del []netip.Prefix
		for pfx, p := range want {
			if p.goesTo(name) && !have[pfx] {
				add = append(add, pfx)
			}
		}
		for pfx := range have {
			if p, ok := want[pfx]; !ok || !p.goesTo(name) {
				del = append(del, pfx)
			}
		}
		if err := updatePeerSets(ctx, a.srv, name, add, del); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
			continue
		}
		for _, pfx := range del {
			delete(have, pfx)
		}
		for _, pfx := range add {
			have[pfx] = true
		}
	}
	return errors.Join(errs...)
}
