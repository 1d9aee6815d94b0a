package members

import (
	"bytes"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// hooks receives memberlist's callbacks for one Run (gen). memberlist calls
// the event methods one at a time, under its own locks: they only update the
// live map and never block.
type hooks struct {
	m   *Members
	gen int
}

var (
	_ memberlist.Delegate         = (*hooks)(nil)
	_ memberlist.EventDelegate    = (*hooks)(nil)
	_ memberlist.ConflictDelegate = (*hooks)(nil)
)

// NodeMeta implements memberlist.Delegate.
func (h *hooks) NodeMeta(limit int) []byte {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if len(h.m.meta) > limit {
		return nil // SetMeta and New check against MetaMaxSize
	}
	h.m.given = bytes.Clone(h.m.meta)
	return bytes.Clone(h.m.meta)
}

// NotifyMsg implements memberlist.Delegate; Pier sends no user messages.
func (h *hooks) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (h *hooks) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (h *hooks) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (h *hooks) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (h *hooks) NotifyJoin(n *memberlist.Node) {
	if n.Name != h.m.name {
		h.m.contacted() // a peer joined us: it sent us the whole view
	}
	if h.set(n) {
		h.m.metrics.events.WithLabelValues(eventJoin).Inc()
		h.m.log.Info("member joined", "peer", n.Name, "addr", n.Address())
	}
}

// NotifyUpdate implements memberlist.EventDelegate.
func (h *hooks) NotifyUpdate(n *memberlist.Node) {
	if h.set(n) {
		h.m.metrics.events.WithLabelValues(eventUpdate).Inc()
		h.m.log.Debug("member updated", "peer", n.Name)
	}
}

// NotifyLeave implements memberlist.EventDelegate: the member left or was
// declared dead.
func (h *hooks) NotifyLeave(n *memberlist.Node) {
	m := h.m
	m.mu.Lock()
	_, ok := m.live[n.Name]
	ok = ok && h.gen == m.gen
	if ok {
		delete(m.live, n.Name)
	}
	count := len(m.live)
	m.mu.Unlock()
	if !ok {
		return
	}
	m.metrics.live.Set(float64(count))
	m.metrics.events.WithLabelValues(eventLeave).Inc()
	// memberlist hands over the Node as it was while alive: its State
	// says neither left nor dead, so both count as a verdict here.
	m.log.Info("member gone", "peer", n.Name)
	m.notify()
	select {
	case m.verdicts <- struct{}{}:
	default:
	}
}

// set records a joined or updated member; it reports whether anything
// changed (and then has notified).
func (h *hooks) set(n *memberlist.Node) bool {
	m := h.m
	addr, _ := netip.AddrFromSlice(n.Addr)
	mb := member{addr: netip.AddrPortFrom(addr.Unmap(), n.Port), meta: bytes.Clone(n.Meta)}
	m.mu.Lock()
	old, had := m.live[n.Name]
	changed := h.gen == m.gen && (!had || old.addr != mb.addr || !bytes.Equal(old.meta, mb.meta))
	if changed {
		m.live[n.Name] = mb
	}
	count := len(m.live)
	m.mu.Unlock()
	if changed {
		m.metrics.live.Set(float64(count))
		m.notify()
	}
	return changed
}

// NotifyConflict implements memberlist.ConflictDelegate: two nodes claim the
// same name.
func (h *hooks) NotifyConflict(existing, other *memberlist.Node) {
	h.m.log.Error("two nodes use the same member name; the newcomer is ignored",
		"peer", existing.Name, "addr", existing.Address(), "other", other.Address())
}
