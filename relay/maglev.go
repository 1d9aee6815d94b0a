package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/pier-lb/pier/relay/kernelpath"
)

// DefaultTableSize is the default Maglev table size, a prime well above 100
// times any realistic backend count.
const DefaultTableSize = 65537

// ErrNoBackend is returned when a listener has no healthy backend.
var ErrNoBackend = errors.New("no healthy backend")

// Table is a Maglev lookup table (Eisenbud et al., NSDI 2016) over backend
// names. It is immutable once built and safe for concurrent use.
type Table struct {
	names   []string
	entries []int32 // index into names
}

// NewTable builds a table of size m (a prime; 0 means DefaultTableSize) over
// the backends. The result depends only on the set of names, not their order,
// so relays in different processes agree.
func NewTable(backends []string, m int) (*Table, error) {
	if m == 0 {
		m = DefaultTableSize
	}
	if !isPrime(m) {
		return nil, fmt.Errorf("maglev table size %d: not a prime", m)
	}
	names := slices.Clone(backends)
	slices.Sort(names)
	names = slices.Compact(names)
	t := &Table{names: names, entries: make([]int32, m)}
	if len(names) > 0 {
		t.populate()
	}
	return t, nil
}

// populate fills the table: each backend in turn takes the next free slot of
// its own permutation of the slots, until every slot is taken.
func (t *Table) populate() {
	m := uint64(len(t.entries))
	offset := make([]uint64, len(t.names))
	skip := make([]uint64, len(t.names))
	next := make([]uint64, len(t.names))
	for i, name := range t.names {
		offset[i] = hashString(name, 0x5bd1e995) % m
		skip[i] = hashString(name, 0x27d4eb2f)%(m-1) + 1
	}
	for i := range t.entries {
		t.entries[i] = -1
	}
	filled := uint64(0)
	for {
		for i := range t.names {
			slot := (offset[i] + next[i]*skip[i]) % m
			for t.entries[slot] >= 0 {
				next[i]++
				slot = (offset[i] + next[i]*skip[i]) % m
			}
			t.entries[slot] = int32(i)
			next[i]++
			if filled++; filled == m {
				return
			}
		}
	}
}

// Lookup returns the backend owning hash (a HashKey), or "" for an empty
// table. The bucket is the kernel's (kernelpath.Bucket), so that the
// kernel data path and the relay agree.
func (t *Table) Lookup(hash uint64) string {
	return t.owner(int(kernelpath.Bucket(uint32(hash), uint32(len(t.entries)))))
}

// owner returns the backend owning bucket i, or "" for an empty table.
func (t *Table) owner(i int) string {
	if len(t.names) == 0 {
		return ""
	}
	return t.names[t.entries[i]]
}

// size is the number of buckets.
func (t *Table) size() int { return len(t.entries) }

// Backends returns the names in the table, sorted.
func (t *Table) Backends() []string { return slices.Clone(t.names) }

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashString is FNV-1a over s, seeded, with a final avalanche so nearby names
// spread over the whole range. Stable across processes and versions.
func hashString(s string, seed uint64) uint64 {
	h := uint64(fnvOffset) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// HashKey hashes a client key: its address (IPv4-mapped IPv6 addresses as
// IPv4, so 192.0.2.1 and ::ffff:192.0.2.1 agree) and, unless addrOnly, its
// port. It is the kernel's jhash over what the kernel data path's rule
// loads (kernelpath.Hash), so both pick the same bucket.
func HashKey(client netip.AddrPort, addrOnly bool) uint64 {
	return uint64(kernelpath.Hash(client, addrOnly))
}

// mix is the splitmix64 finalizer.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
