package allocator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Claim is an assignment found in a Service's status at start-up.
type Claim struct {
	Service    ServiceKey
	Addrs      []netip.Addr // primary family first
	SharingKey string
	Ports      []Port
	Created    time.Time
}

// Conflict is a claimed address that a Service lost (or never got) in
// Restore. Err wraps ErrAddressInUse or ErrSharingConflict and names
// Holder, or wraps ErrInvalidRequest for a malformed claim.
type Conflict struct {
	Service ServiceKey
	Addr    netip.Addr
	Holder  ServiceKey
	Err     error
}

// Restore records existing assignments. It never moves an address:
// addresses outside every pool are kept (see Orphans). When two Services
// claim one address and may not share it, the newer one (later Created,
// then greater namespace/name) loses that address, even if it held it
// before this call; it keeps its other address, if any. A claim replaces
// what its Service held before. The batch is sorted first, so the outcome
// does not depend on its order. Conflicts come back sorted by Service and
// address.
func (a *Allocator) Restore(claims []Claim) []Conflict {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reserve(len(claims))
	order := make([]stamped, len(claims))
	for i := range claims {
		order[i] = stamped{stamp(claims[i].Created), &claims[i]}
	}
	slices.SortFunc(order, compareClaims)
	var out []Conflict
	for _, c := range order {
		out = a.restore(c.Claim, out)
	}
	a.settle()
	slices.SortFunc(out, func(a, b Conflict) int {
		return cmp.Or(a.Service.compare(b.Service), a.Addr.Compare(b.Addr))
	})
	return out
}

// RestoreOne is Restore of a single claim.
func (a *Allocator) RestoreOne(c Claim) []Conflict { return a.Restore([]Claim{c}) }

// reserve sizes empty maps for a large batch.
func (a *Allocator) reserve(n int) {
	if len(a.services) == 0 && n > 0 {
		a.services = make(map[ServiceKey]*service, n)
		a.byAddr = make(map[ip128]*service, n)
	}
}

type stamped struct {
	at int64
	*Claim
}

// compareClaims orders by age, then key, then content, so duplicates of
// one Service are applied in a fixed order (the last one wins).
func compareClaims(a, b stamped) int {
	if a.at != b.at {
		return cmp.Compare(a.at, b.at)
	}
	if c := a.Service.compare(b.Service); c != 0 {
		return c
	}
	return cmp.Or(
		slices.CompareFunc(a.Addrs, b.Addrs, netip.Addr.Compare),
		cmp.Compare(a.SharingKey, b.SharingKey),
		slices.CompareFunc(a.Ports, b.Ports, comparePorts),
	)
}

func comparePorts(a, b Port) int {
	return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
}

// restore applies one claim and appends its conflicts to out.
func (a *Allocator) restore(c *Claim, out []Conflict) []Conflict {
	if c.Service.Name == "" {
		return append(out, invalid(c, netip.Addr{}, "empty service name"))
	}
	if old := a.services[c.Service]; old != nil {
		a.drop(old)
	}
	s := &service{key: c.Service, share: newShareInfo(c.SharingKey, c.Ports), created: stamp(c.Created)}
	for _, addr := range c.Addrs {
		out = a.restoreAddr(s, c, addr, out)
	}
	if s.flags != 0 {
		a.services[s.key] = s
	}
	return out
}

func (a *Allocator) restoreAddr(s *service, c *Claim, addr netip.Addr, out []Conflict) []Conflict {
	n, err := normAddr(addr)
	switch {
	case err != nil:
		return append(out, invalid(c, addr, err.Error()))
	case s.held(familyOf(n)):
		return append(out, invalid(c, n, "second address of family "+familyOf(n).String()))
	}
	x := ipOf(n)
	var newer []*service
	for _, o := range a.of(x) {
		if err := compatible(x, s.share, o); err != nil {
			if s.newer(o) {
				err = fmt.Errorf("restore %s: %w", s.key, err)
				return append(out, Conflict{Service: s.key, Addr: n, Holder: o.key, Err: err})
			}
			newer = append(newer, o)
		}
	}
	for _, o := range newer {
		out = append(out, a.evict(o, x, s))
	}
	a.hold(s, x)
	return out
}

// evict takes x from o, which lost it to the older s.
func (a *Allocator) evict(o *service, x ip128, s *service) Conflict {
	a.unhold(o, x)
	if o.flags == 0 {
		delete(a.services, o.key)
	}
	err := fmt.Errorf("restore %s: %w", o.key, compatible(x, o.share, s))
	return Conflict{Service: o.key, Addr: x.addr(), Holder: s.key, Err: err}
}

func invalid(c *Claim, addr netip.Addr, msg string) Conflict {
	return Conflict{Service: c.Service, Addr: addr, Err: fmt.Errorf("restore %s: %w: %s", c.Service, ErrInvalidRequest, msg)}
}
