package relay

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// ErrTableFull is returned when a flow table holds its maximum of flows.
var ErrTableFull = errors.New("flow table full")

// Flow is one placed flow: the backend that owns it and the per-flow state V
// of the data path using the table.
type Flow[V any] struct {
	Backend string
	Value   V
	seen    atomic.Int64 // unix nanoseconds of the last packet either way
}

// Touch records activity on the flow.
func (f *Flow[V]) Touch(now time.Time) { f.seen.Store(now.UnixNano()) }

// FlowTable maps client address and port to a placed flow, with a hard size
// limit and idle expiry. Lookups take a read lock only.
type FlowTable[V any] struct {
	clock clock.PassiveClock
	max   int
	idle  time.Duration

	mu    sync.RWMutex
	flows map[netip.AddrPort]*Flow[V]
}

// NewFlowTable returns a table of at most max flows expiring after idle.
func NewFlowTable[V any](max int, idle time.Duration, clk clock.PassiveClock) *FlowTable[V] {
	return &FlowTable[V]{clock: clk, max: max, idle: idle, flows: make(map[netip.AddrPort]*Flow[V])}
}

// Get returns the flow of client and marks it active.
func (t *FlowTable[V]) Get(client netip.AddrPort) (*Flow[V], bool) {
	t.mu.RLock()
	f, ok := t.flows[client]
	t.mu.RUnlock()
	if ok {
		f.Touch(t.clock.Now())
	}
	return f, ok
}

// Insert places a new flow. It fails with ErrTableFull when the table is full;
// an existing flow of client is returned unchanged with inserted false (a
// concurrent insert won).
func (t *FlowTable[V]) Insert(client netip.AddrPort, backend string, v V) (f *Flow[V], inserted bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.flows[client]; ok {
		return old, false, nil
	}
	if len(t.flows) >= t.max {
		return nil, false, ErrTableFull
	}
	f = &Flow[V]{Backend: backend, Value: v}
	f.Touch(t.clock.Now())
	t.flows[client] = f
	return f, true, nil
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
	cutoff := t.clock.Now().Add(-t.idle).UnixNano()
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
