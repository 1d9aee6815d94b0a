package allocator

import (
	"fmt"
	"net/netip"
	"sync"
)

// ServiceKey names a Service.
type ServiceKey struct{ Namespace, Name string }

func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

func (k ServiceKey) compare(o ServiceKey) int {
	if k.Namespace != o.Namespace {
		if k.Namespace < o.Namespace {
			return -1
		}
		return 1
	}
	switch {
	case k.Name < o.Name:
		return -1
	case k.Name > o.Name:
		return 1
	}
	return 0
}

// FamilyPolicy is a Service's spec.ipFamilyPolicy.
type FamilyPolicy uint8

// Family policies. The zero value is SingleStack.
const (
	SingleStack FamilyPolicy = iota
	PreferDualStack
	RequireDualStack
)

func (p FamilyPolicy) String() string {
	switch p {
	case SingleStack:
		return "SingleStack"
	case PreferDualStack:
		return "PreferDualStack"
	case RequireDualStack:
		return "RequireDualStack"
	}
	return fmt.Sprintf("FamilyPolicy(%d)", uint8(p))
}

// Protocol is a Service port protocol.
type Protocol string

// Protocols.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// Port is one port of a Service, as far as sharing is concerned.
type Port struct {
	Protocol Protocol
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

// Assignment is one address held by a Service.
type Assignment struct {
	Addr netip.Addr
	Pool string // "" when the address is outside every pool (an orphan)
}

// Orphan is a held address that no pool may hand out any more.
type Orphan struct {
	Service ServiceKey
	Addr    netip.Addr
}

// Options configures an Allocator.
type Options struct {
	Pools []Pool
}

// Allocator assigns addresses from pools to Services. It is safe for
// concurrent use.
type Allocator struct {
	mu       sync.Mutex
	pools    poolSet
	services map[ServiceKey]*service
	holders
}

// New validates opts and returns an Allocator holding nothing.
func New(opts Options) (*Allocator, error) {
	ps, err := newPoolSet(opts.Pools)
	if err != nil {
		return nil, fmt.Errorf("new allocator: %w", err)
	}
	return &Allocator{
		pools:    ps,
		services: make(map[ServiceKey]*service),
		holders:  newHolders(),
	}, nil
}

// SetPools replaces the pool set. It never moves an address: it returns the
// held addresses that no pool may hand out any more (orphans), which stay
// held until released. On error nothing changes.
func (a *Allocator) SetPools(pools []Pool) ([]Orphan, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps, err := newPoolSet(pools)
	if err != nil {
		return nil, fmt.Errorf("set pools: %w", err)
	}
	a.pools = ps
	a.orphans = make(map[ip128]struct{})
	for x := range a.byAddr {
		if f := ps.owner(x); f != nil {
			f.inUse++
		} else {
			a.orphans[x] = struct{}{}
		}
	}
	a.settle()
	return a.orphanList(), nil
}

// settle moves every cursor past the addresses held at its position, so
// the next Assign does not pay for a bulk change.
func (a *Allocator) settle() {
	for _, p := range a.pools.ranked {
		for _, f := range p.fams {
			if f != nil {
				f.advance(a.byAddr)
			}
		}
	}
}

// Release frees every address held by the Service and reports whether it
// held any.
func (a *Allocator) Release(key ServiceKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.services[key]
	if s == nil {
		return false
	}
	a.drop(s)
	return true
}

// drop releases all of s's addresses and forgets s.
func (a *Allocator) drop(s *service) {
	xs, n := s.list()
	for _, x := range xs[:n] {
		a.unhold(s, x)
	}
	delete(a.services, s.key)
}

// Lookup returns the addresses the Service holds, primary family first.
func (a *Allocator) Lookup(key ServiceKey) ([]Assignment, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.services[key]
	if s == nil {
		return nil, false
	}
	return a.assignments(s), true
}

func (a *Allocator) assignments(s *service) []Assignment {
	xs, n := s.list()
	out := make([]Assignment, n)
	for i, x := range xs[:n] {
		out[i] = Assignment{Addr: x.addr()}
		if f := a.pools.owner(x); f != nil {
			out[i].Pool = f.pool.cfg.Name
		}
	}
	return out
}

// hold gives x to s, updating pool usage on the first holder.
func (a *Allocator) hold(s *service, x ip128) {
	if a.add(x, s) {
		if f := a.pools.owner(x); f != nil {
			f.claim(x)
		} else {
			a.orphans[x] = struct{}{}
		}
	}
	s.set(x)
}

// unhold takes x from s, freeing it in its pool after the last holder.
func (a *Allocator) unhold(s *service, x ip128) {
	if a.remove(x, s) {
		if f := a.pools.owner(x); f != nil {
			f.release(x)
		} else {
			delete(a.orphans, x)
		}
	}
	s.unset(x)
}
