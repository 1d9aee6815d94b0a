package relay

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// ErrTableFull is returned when a flow table holds its maximum of flows and
// none of them may be evicted.
var ErrTableFull = errors.New("flow table full")

// evictGrace is how long a flow that has carried one datagram from its client
// is safe from eviction by a new flow when the table is full: long enough for
// a query's answer or a call's next datagram (20 ms), short enough that a
// call failing over into a table full of a flood's flows gets in within a
// few of its datagrams.
const evictGrace = 100 * time.Millisecond

// Flow is one placed flow: the backend that owns it and the per-flow state V
// of the data path using the table.
type Flow[V any] struct {
	Backend string
	Value   V
	safe    int64        // table time until which the flow may not be evicted
	seen    atomic.Int64 // table time of the last packet either way
	more    atomic.Bool  // the client sent more than the first datagram
}

// freshFlow is a flow in the order of inserts, a candidate for eviction while
// it has carried a single datagram from its client.
type freshFlow[V any] struct {
	client netip.AddrPort
	f      *Flow[V]
}

// FlowTable maps client address and port to a placed flow, with a hard size
// limit and idle expiry. Lookups take a read lock only.
//
// Time in the table is monotonic (clock.Since of the table's start, which is
// monotonic for a real clock): a step of the wall clock neither expires live
// flows nor keeps idle ones.
//
// A full table takes a new flow in place of the oldest flow that has carried
// a single datagram from its client and is older than evictGrace. A flood of
// datagrams from ever new (spoofed) sources then churns through its own
// flows, while a flow whose client keeps sending, a call, is never evicted:
// so a call failing over to this node during a flood gets in, in O(1).
type FlowTable[V any] struct {
	clock clock.PassiveClock
	start time.Time
	max   int
	idle  time.Duration
	grace time.Duration

	mu      sync.RWMutex
	flows   map[netip.AddrPort]*Flow[V]
	fresh   []freshFlow[V] // inserts in order from head; stale entries are skipped
	head    int
	onEvict func(*Flow[V])
}

// NewFlowTable returns a table of at most max flows expiring after idle.
func NewFlowTable[V any](max int, idle time.Duration, clk clock.PassiveClock) *FlowTable[V] {
	return &FlowTable[V]{
		clock: clk, start: clk.Now(), max: max, idle: idle, grace: evictGrace,
		flows: make(map[netip.AddrPort]*Flow[V]),
	}
}

// OnEvict sets the function called, without the table's lock, with each
// flow evicted to make room for a new one. Set it before use.
func (t *FlowTable[V]) OnEvict(fn func(*Flow[V])) { t.onEvict = fn }

// now is the table's monotonic time in nanoseconds.
func (t *FlowTable[V]) now() int64 { return int64(t.clock.Since(t.start)) }

// Touch records activity on f from its backend.
func (t *FlowTable[V]) Touch(f *Flow[V]) { f.seen.Store(t.now()) }

// Get returns the flow of client and marks it active: a datagram from client.
func (t *FlowTable[V]) Get(client netip.AddrPort) (*Flow[V], bool) {
	t.mu.RLock()
	f, ok := t.flows[client]
	t.mu.RUnlock()
	if ok {
		f.seen.Store(t.now())
		if !f.more.Load() {
			f.more.Store(true)
		}
	}
	return f, ok
}

// Room reports whether a new flow may be inserted now: the table is not full
// or a flow may be evicted. It is a hint; Insert decides.
func (t *FlowTable[V]) Room() bool {
	now := t.now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.flows) < t.max {
		return true
	}
	for i := t.head; i < len(t.fresh) && i < t.head+8; i++ {
		if e := t.fresh[i]; t.candidate(e) {
			return now >= e.f.safe
		}
	}
	return len(t.fresh)-t.head > 8 // stale entries: Insert skips them
}

// candidate reports whether e is still a one-datagram flow in the table.
func (t *FlowTable[V]) candidate(e freshFlow[V]) bool {
	return t.flows[e.client] == e.f && !e.f.more.Load()
}

// Insert places a new flow, evicting one if the table is full (see
// FlowTable). It fails with ErrTableFull when the table is full and no flow
// may be evicted; an existing flow of client is returned unchanged with
// inserted false (a concurrent insert won).
func (t *FlowTable[V]) Insert(client netip.AddrPort, backend string, v V) (f *Flow[V], inserted bool, err error) {
	now := t.now()
	t.mu.Lock()
	if old, ok := t.flows[client]; ok {
		t.mu.Unlock()
		return old, false, nil
	}
	var evicted *Flow[V]
	if len(t.flows) >= t.max {
		if evicted = t.evict(now); evicted == nil {
			t.mu.Unlock()
			return nil, false, ErrTableFull
		}
	}
	f = &Flow[V]{Backend: backend, Value: v, safe: now + t.graceFor(now)}
	f.seen.Store(now)
	t.flows[client] = f
	t.push(freshFlow[V]{client, f})
	t.mu.Unlock()
	if evicted != nil && t.onEvict != nil {
		t.onEvict(evicted)
	}
	return f, true, nil
}

// graceFor is a flow's grace time: between grace and twice that, spread
// (by the clock's low bits) so that the flows a flood placed in a burst do
// not free their slots in a burst each grace time, which would let in only
// the flood's datagrams of the burst and never a call sending in step.
func (t *FlowTable[V]) graceFor(now int64) int64 {
	g := int64(t.grace)
	if g <= 0 {
		return 0
	}
	return g + int64(uint64(now)*0x9e3779b97f4a7c15%uint64(g))
}

// evict removes and returns the oldest one-datagram flow past the grace
// time, or nil. Each entry is skipped once: amortised O(1).
func (t *FlowTable[V]) evict(now int64) *Flow[V] {
	for ; t.head < len(t.fresh); t.head++ {
		e := t.fresh[t.head]
		if !t.candidate(e) {
			t.fresh[t.head] = freshFlow[V]{}
			continue
		}
		if now < e.f.safe {
			return nil
		}
		delete(t.flows, e.client)
		t.fresh[t.head] = freshFlow[V]{}
		t.head++
		return e.f
	}
	return nil
}

// push appends e to the insert order, compacting it so that it holds at most
// about twice max entries.
func (t *FlowTable[V]) push(e freshFlow[V]) {
	if len(t.fresh) >= 2*t.max+16 {
		n := 0
		for _, x := range t.fresh[t.head:] {
			if t.candidate(x) {
				t.fresh[n] = x
				n++
			}
		}
		clear(t.fresh[n:])
		t.fresh, t.head = t.fresh[:n], 0
	}
	t.fresh = append(t.fresh, e)
}

// Delete removes client's flow if it is still f.
func (t *FlowTable[V]) Delete(client netip.AddrPort, f *Flow[V]) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.flows[client] != f {
		return false
	}
	delete(t.flows, client)
	return true
}

// Expire removes and returns the flows idle for longer than the timeout.
func (t *FlowTable[V]) Expire() []*Flow[V] {
	cutoff := t.now() - int64(t.idle)
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*Flow[V]
	for k, f := range t.flows {
		if f.seen.Load() < cutoff {
			delete(t.flows, k)
			out = append(out, f)
		}
	}
	return out
}

// Drain removes and returns every flow.
func (t *FlowTable[V]) Drain() []*Flow[V] {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Flow[V], 0, len(t.flows))
	for _, f := range t.flows {
		out = append(out, f)
	}
	clear(t.flows)
	clear(t.fresh)
	t.fresh, t.head = t.fresh[:0], 0
	return out
}

// Len is the number of flows.
func (t *FlowTable[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.flows)
}

// Backends returns each client's backend, for tests and debugging.
func (t *FlowTable[V]) Backends() map[netip.AddrPort]string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[netip.AddrPort]string, len(t.flows))
	for k, f := range t.flows {
		out[k] = f.Backend
	}
	return out
}
