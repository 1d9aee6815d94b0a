package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pier-lb/pier/relay/kernelpath"
)

// gate makes a FakeKernel's Apply calls after the first (the one opening
// the path, before Ready) wait until released, and says when one waits.
type gate struct {
	mu      sync.Mutex
	calls   int
	entered chan struct{} // one send per Apply that waits
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1000), release: make(chan struct{})}
}

func (g *gate) apply(string, []kernelpath.Listener) error {
	g.mu.Lock()
	g.calls++
	first := g.calls == 1
	g.mu.Unlock()
	if first {
		return nil
	}
	g.entered <- struct{}{}
	<-g.release
	return nil
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitEntered waits for an Apply to be waiting at the gate.
func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no kernel Apply after the backends changed")
	}
}

// fakeKernelRelay runs a relay with one UDP listener on the fake kernel
// (and a fake clock: no active checks unless the test steps it).
func fakeKernelRelay(t *testing.T, k *FakeKernel, bs []Backend) (*running, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	r := startRelay(t, Options{
		Backends: bs, Clock: clk,
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}},
		Kernel:    KernelOptions{Enabled: true, Tables: k},
	})
	if len(k.Paths()) != 1 {
		t.Fatalf("%d kernel paths opened, want 1", len(k.Paths()))
	}
	return r, clk
}

// docBackends are n backends in a documentation range (the fake kernel
// sends nothing to them), named and numbered from first.
func docBackends(first, n int) []Backend {
	var out []Backend
	for i := first; i < first+n; i++ {
		out = append(out, Backend{Name: fmt.Sprintf("b%d", i),
			Addr: netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)}), DefaultPort: 7000})
	}
	return out
}

// owners are the distinct backend addresses of a kernel table.
func owners(ls []kernelpath.Listener) []netip.Addr {
	var out []netip.Addr
	for _, l := range ls {
		for _, b := range l.Buckets {
			if b.IsValid() && !slices.Contains(out, b.Addr()) {
				out = append(out, b.Addr())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func addrsOf(bs []Backend) []netip.Addr {
	var out []netip.Addr
	for _, b := range bs {
		out = append(out, b.Addr)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// TestKernelSlowApplyDoesNotBlockNewFlows: while the kernel takes its time
// writing a backend change (a slow netlink request), a new flow is placed
// and answered by the relay's sockets.
func TestKernelSlowApplyDoesNotBlockNewFlows(t *testing.T) {
	srv1, srv2 := startBackend(t, "srv1", "127.0.0.1", false), startBackend(t, "srv2", "127.0.0.1", false)
	g := newGate()
	k := &FakeKernel{Apply: g.apply}
	r, _ := fakeKernelRelay(t, k, backends(srv1))
	t.Cleanup(g.open) // before the relay stops (cleanups run last first)

	set := make(chan error, 1)
	go func() { set <- r.SetBackends(backends(srv1, srv2)) }()
	g.waitEntered(t)
	if name := udpAsk(t, dialUDP(t, r.Addr("udp")), "hello"); name != "srv1" && name != "srv2" {
		t.Fatalf("new flow answered by %q", name)
	}
	g.open()
	if err := <-set; err != nil {
		t.Fatal(err)
	}
}

// TestKernelSyncCoalesces: backend changes made while the kernel is busy
// are written as one, the last.
func TestKernelSyncCoalesces(t *testing.T) {
	g := newGate()
	k := &FakeKernel{Apply: g.apply}
	r, _ := fakeKernelRelay(t, k, docBackends(0, 3))
	t.Cleanup(g.open)
	p := k.Paths()[0]

	set := make(chan error, 1)
	var last []Backend
	go func() {
		for i := range 100 {
			last = docBackends(i, 3)
			if err := r.SetBackends(last); err != nil {
				set <- err
				return
			}
		}
		set <- nil
	}()
	g.waitEntered(t) // the first change is being written
	select {
	case err := <-set:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("SetBackends blocked while the kernel writes an earlier change")
	}
	g.open()
	want := addrsOf(last)
	eventually(t, "the last backends in the kernel", func() bool {
		_, ls := p.Applied()
		return slices.Equal(owners(ls), want)
	})
	if n, _ := p.Applied(); n > 3 {
		t.Errorf("%d kernel writes for 100 backend changes made during one write, want at most 3 (open, the one in progress, the last)", n)
	}
	r.cancel()
	<-r.done
	r.done <- nil // for the cleanup
	if !p.Stopped() || !p.Closed() {
		t.Errorf("kernel path after Run: stopped %v closed %v, want both", p.Stopped(), p.Closed())
	}
}

// TestKernelSyncRetries: a kernel write that fails is counted and tried
// again after a back-off, while the relay's sockets already use the new
// backends.
func TestKernelSyncRetries(t *testing.T) {
	var mu sync.Mutex
	calls, fails := 0, 0
	k := &FakeKernel{Apply: func(string, []kernelpath.Listener) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > 1 && fails < 3 { // the open succeeds, the next three fail
			fails++
			return errors.New("netlink: device or resource busy")
		}
		return nil
	}}
	r, clk := fakeKernelRelay(t, k, docBackends(0, 2))
	p := k.Paths()[0]

	next := docBackends(10, 2)
	if err := r.SetBackends(next); err != nil {
		t.Fatal(err)
	}
	if b, err := r.pick(r.opts.Listeners[0], netip.MustParseAddrPort("198.51.100.7:4000")); err != nil || !slices.Contains(addrsOf(next), b.Addr) {
		t.Fatalf("user space after a failed kernel write: picked %v, %v; want one of %v", b, err, addrsOf(next))
	}
	eventually(t, "the new backends in the kernel after failed writes", func() bool {
		clk.Step(time.Second) // the back-off
		_, ls := p.Applied()
		return slices.Equal(owners(ls), addrsOf(next))
	})
	if got := gathered(t, r.reg, "pier_relay_kernel_sync_errors_total"); got != 3 {
		t.Errorf("pier_relay_kernel_sync_errors_total %v, want 3", got)
	}
}

// TestKernelForgetsAfterWrite: the kernel's flows to a backend that went
// down are ended once the kernel's table no longer names it; ended before,
// their next datagrams would be placed on it again.
func TestKernelForgetsAfterWrite(t *testing.T) {
	k := NewFakeKernel()
	r, _ := fakeKernelRelay(t, k, docBackends(0, 3))
	p := k.Paths()[0]
	down := r.backend("b1")
	r.markDown(down, "test", errors.New("test"))
	want := []netip.AddrPort{down.addr(r.opts.Listeners[0])}
	eventually(t, "the flows of the down backend forgotten", func() bool {
		return slices.Equal(p.Forgotten(), want)
	})
}

// TestKernelVIPsSynced: a VIP change reaches the kernel.
func TestKernelVIPsSynced(t *testing.T) {
	k := NewFakeKernel()
	r, _ := fakeKernelRelay(t, k, docBackends(0, 2))
	p := k.Paths()[0]
	vips := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::10")}
	if err := r.SetVIPs(vips); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the VIPs in the kernel", func() bool {
		_, ls := p.Applied()
		return len(ls) == 1 && slices.Equal(ls[0].VIPs, vips)
	})
}

// TestKernelOffWithoutForwarding: a namespace that forwards neither family
// keeps the kernel data path off; the relay works in user space.
func TestKernelOffWithoutForwarding(t *testing.T) {
	k := &FakeKernel{NoForwarding: true}
	srv1 := startBackend(t, "srv1", "127.0.0.1", false)
	r := startRelay(t, Options{Backends: backends(srv1), Kernel: KernelOptions{Enabled: true, Tables: k}})
	if n := len(k.Paths()); n != 0 {
		t.Errorf("%d kernel paths opened without forwarding", n)
	}
	if name := udpAsk(t, dialUDP(t, r.Addr("udp")), "hi"); name != "srv1" {
		t.Errorf("answered by %q, want srv1", name)
	}
}

func TestKernelNeedsTables(t *testing.T) {
	_, err := New(Options{
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}},
		Kernel:    KernelOptions{Enabled: true},
	})
	if err == nil {
		t.Fatal("kernel data path without Tables accepted")
	}
}

// gathered is the value of the metric called name (one series) in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestPickDuringBackendChange: a new flow placed while the backends change
// always finds one: the Maglev table and the backend set it names are read
// as one version.
func TestPickDuringBackendChange(t *testing.T) {
	r, err := New(Options{Backends: docBackends(0, 3), TableSize: 1009, // small: quick changes
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			if err := r.SetBackends(docBackends(i%2*10, 3)); err != nil { // no name in common
				panic(err)
			}
		}
	}()
	l := r.opts.Listeners[0]
	picks, failed := 0, 0
	for running := true; running; picks++ {
		select {
		case <-done:
			running = false
		default:
		}
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(picks)}), uint16(picks))
		if _, err := r.pick(l, client); err != nil {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d picks found no backend while the backends changed (there always were 3)", failed, picks)
	}
}
