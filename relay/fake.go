package relay

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/pier-lb/pier/relay/kernelpath"
)

// FakeKernel is a KernelTables that writes nothing to the kernel: its
// paths record what relays apply, so the kernel data path's bookkeeping
// runs without root. Every flow stays on the relay's sockets. Set its
// fields before the relays start.
type FakeKernel struct {
	// Apply, when set, is called by every path's Apply (with the path's
	// table name) before it records ls; an error fails that Apply (nothing
	// recorded). It may block, as a slow netlink request would.
	Apply func(table string, ls []kernelpath.Listener) error
	// NoForwarding makes the namespace forward neither family (the kernel
	// data path then stays off).
	NoForwarding bool

	mu    sync.Mutex
	paths []*FakePath
	stale []string // prefixes RemoveStale was called with
}

// NewFakeKernel returns a FakeKernel whose Apply always succeeds.
func NewFakeKernel() *FakeKernel { return &FakeKernel{} }

// Open returns a new recording path named prefix_fake_n.
func (k *FakeKernel) Open(prefix string, o kernelpath.Options) (KernelPath, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := &FakePath{Table: fmt.Sprintf("%s_fake_%d", prefix, len(k.paths)+1), kernel: k}
	k.paths = append(k.paths, p)
	return p, nil
}

// Forwarding reports both families on unless NoForwarding.
func (k *FakeKernel) Forwarding() (ipv4, ipv6 bool) { return !k.NoForwarding, !k.NoForwarding }

// RemoveStale records prefix.
func (k *FakeKernel) RemoveStale(prefix string) error {
	k.mu.Lock()
	k.stale = append(k.stale, prefix)
	k.mu.Unlock()
	return nil
}

// Paths are the paths opened so far.
func (k *FakeKernel) Paths() []*FakePath {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.paths)
}

// FakePath is a FakeKernel's path.
type FakePath struct {
	Table  string
	kernel *FakeKernel

	mu              sync.Mutex
	applies         int // successful
	last            []kernelpath.Listener
	forgotten       []netip.AddrPort
	stopped, closed bool
}

// Apply calls FakeKernel.Apply, then records ls as the table's content.
func (p *FakePath) Apply(ls []kernelpath.Listener) error {
	if f := p.kernel.Apply; f != nil {
		if err := f(p.Table, ls); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("fake kernel: apply to %s: closed", p.Table)
	}
	p.applies++
	p.last, p.stopped = cloneListeners(ls), false
	return nil
}

func cloneListeners(ls []kernelpath.Listener) []kernelpath.Listener {
	out := slices.Clone(ls)
	for i := range out {
		out[i].Buckets, out[i].VIPs = slices.Clone(out[i].Buckets), slices.Clone(out[i].VIPs)
	}
	return out
}

// Applied is how many Apply calls succeeded, and the listeners of the last.
func (p *FakePath) Applied() (int, []kernelpath.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applies, cloneListeners(p.last)
}

// Stopped reports whether Stop came after the last Apply.
func (p *FakePath) Stopped() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.stopped }

// Closed reports whether Close was called.
func (p *FakePath) Closed() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.closed }

// Forget records backend. It fails while the table still places flows on
// backend: the kernel would place their next datagrams on it again.
func (p *FakePath) Forget(backend netip.AddrPort) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.last {
		if slices.Contains(l.Buckets, backend) {
			return 0, fmt.Errorf("fake kernel: forget the flows to %s while %s places new ones on it", backend, p.Table)
		}
	}
	p.forgotten = append(p.forgotten, backend)
	return 0, nil
}

// Forgotten are the backends whose flows Forget ended, in order.
func (p *FakePath) Forgotten() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.forgotten)
}

// Counters are zero for every listener applied.
func (p *FakePath) Counters() (map[string]kernelpath.Counters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]kernelpath.Counters{}
	for _, l := range p.last {
		out[l.Name] = kernelpath.Counters{}
	}
	return out, nil
}

// Flows is empty: the fake kernel carries no flow.
func (p *FakePath) Flows() (map[uint16]int, error) { return map[uint16]int{}, nil }

// Stop empties the table as the kernel's does: no new flow is placed.
func (p *FakePath) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	return nil
}

// Close deletes the table.
func (p *FakePath) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}
