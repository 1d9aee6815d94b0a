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
// the backends, each of weight 1. The result depends only on the set of
// names, not their order, so relays in different processes agree.
func NewTable(backends []string, m int) (*Table, error) {
	w := make(map[string]uint32, len(backends))
	for _, b := range backends {
		w[b] = 1
	}
	return NewWeightedTable(w, m)
}

// NewWeightedTable builds a table of size m (a prime; 0 means
// DefaultTableSize) in which each backend owns a share of the slots
// proportional to its weight: backend i gets floor(m*w_i/W) slots, and the
// slots left go one each to the backends with the largest remainders (ties
// by name). A backend of weight 0 owns no slot: it gets no new flow. The
// slots are filled as Maglev does, each backend in turn taking the next
// free slot of its own permutation, skipping those whose share is full; so
// a weight change moves about the slots whose share changed. Equal
// weights give the table NewTable gives, whatever the weight.
func NewWeightedTable(weights map[string]uint32, m int) (*Table, error) {
	if m == 0 {
		m = DefaultTableSize
	}
	if !isPrime(m) {
		return nil, fmt.Errorf("maglev table size %d: not a prime", m)
	}
	var names []string
	for name, w := range weights {
		if w > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	t := &Table{names: names, entries: make([]int32, m)}
	if len(names) > 0 {
		ws := make([]uint64, len(names))
		for i, n := range names {
			ws[i] = uint64(weights[n])
		}
		t.populate(quotas(ws, uint64(m)))
	}
	return t, nil
}

// quotas splits m slots in proportion to the weights (largest remainder
// method; equal remainders go to the lower index, the lower name).
func quotas(ws []uint64, m uint64) []uint64 {
	var total uint64
	for _, w := range ws {
		total += w
	}
	q := make([]uint64, len(ws))
	rem := make([]uint64, len(ws))
	var given uint64
	for i, w := range ws {
		// w*m < 2^32 * 2^31: no overflow for any table size NewTable takes.
		q[i], rem[i] = w*m/total, w*m%total
		given += q[i]
	}
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	for _, i := range order[:m-given] {
		q[i]++
	}
	return q
}

// populate fills the table: each backend in turn takes the next free slot
// of its own permutation of the slots, until it holds its quota; backends
// whose quota is full drop out of the turns.
func (t *Table) populate(quota []uint64) {
	m := uint64(len(t.entries))
	offset := make([]uint64, len(t.names))
	skip := make([]uint64, len(t.names))
	next := make([]uint64, len(t.names))
	held := make([]uint64, len(t.names))
	for i, name := range t.names {
		offset[i] = hashString(name, 0x5bd1e995) % m
		skip[i] = hashString(name, 0x27d4eb2f)%(m-1) + 1
	}
	for i := range t.entries {
		t.entries[i] = -1
	}
	active := make([]int, 0, len(t.names))
	for i := range t.names {
		if quota[i] > 0 {
			active = append(active, i)
		}
	}
	for filled := uint64(0); filled < m; {
		keep := active[:0]
		for _, i := range active {
			slot := (offset[i] + next[i]*skip[i]) % m
			for t.entries[slot] >= 0 {
				next[i]++
				slot = (offset[i] + next[i]*skip[i]) % m
			}
			t.entries[slot] = int32(i)
			next[i]++
			filled++
			if held[i]++; held[i] < quota[i] {
				keep = append(keep, i)
			}
		}
		active = keep
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
