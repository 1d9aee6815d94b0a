package allocator

import (
	"cmp"
	"math/big"
	"slices"
)

// PoolStats counts the addresses of one family of one pool. Total counts
// assignable addresses (avoided .0/.255 excluded); InUse counts distinct
// held addresses (a shared address counts once); Available = Total - InUse.
type PoolStats struct {
	Pool      string
	Family    Family
	Total     *big.Int
	InUse     uint64
	Available *big.Int
}

// Stats returns the counts of every pool and family, by pool name then
// family (IPv4 first).
func (a *Allocator) Stats() []PoolStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []PoolStats
	for _, p := range a.pools.ranked {
		for i, f := range p.fams {
			if f == nil {
				continue
			}
			used := new(big.Int).SetUint64(f.inUse)
			out = append(out, PoolStats{
				Pool:      p.cfg.Name,
				Family:    [2]Family{IPv4, IPv6}[i],
				Total:     new(big.Int).Set(f.total),
				InUse:     f.inUse,
				Available: used.Sub(f.total, used),
			})
		}
	}
	slices.SortFunc(out, func(a, b PoolStats) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Family, b.Family))
	})
	return out
}

// Orphans returns the held addresses that no pool may hand out (outside
// every pool, or avoided .0/.255), by Service then address.
func (a *Allocator) Orphans() []Orphan {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.orphanList()
}

func (a *Allocator) orphanList() []Orphan {
	var out []Orphan
	for x := range a.orphans {
		for _, s := range a.of(x) {
			out = append(out, Orphan{Service: s.key, Addr: x.addr()})
		}
	}
	slices.SortFunc(out, func(a, b Orphan) int {
		return cmp.Or(a.Service.compare(b.Service), a.Addr.Compare(b.Addr))
	})
	return out
}
