package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/pier-lb/pier/relay/kernelpath"
)

// KernelOptions configures the kernel data path: new UDP flows whose
// Maglev owner the kernel can reach without the relay (same address family,
// no PROXY header) are translated by nftables DNAT on the node instead of
// passing through the relay's sockets. Placement is the same Maglev table
// and the same hash (HashKey is the kernel's jhash), so a flow lands on the
// same backend either way and on every node.
type KernelOptions struct {
	// Enabled turns the kernel data path on for every UDP listener.
	Enabled bool
	// Tables is the process's owner of the kernel tables (NewKernelTables,
	// created once per process); required when Enabled.
	Tables KernelTables
	// TablePrefix names the relay's nftables table; Tables appends this
	// process's tag and a unique suffix. Default DefaultKernelTablePrefix.
	// Tables.RemoveStale deletes what an earlier process left behind.
	TablePrefix string
	// CtMark is the conntrack mark bit that tags the relay's flows (for
	// masquerading, counting and flushing); default DefaultKernelCtMark.
	CtMark uint32
}

// Kernel data path defaults.
const (
	DefaultKernelTablePrefix = "pier_relay"
	DefaultKernelCtMark      = 0x00100000
)

// KernelTables is the process-wide owner of the kernel data path's tables
// in the node's network namespace: NewKernelTables (nftables), or
// NewFakeKernel where nothing may be written (tests without root). Create
// one per process and hand it to every Relay (Options.Kernel.Tables): it
// names the process's tables, so that the next process can remove them.
type KernelTables interface {
	// Open starts a new path whose table is named after prefix and this
	// process (writing prefix's anchor table once); it writes no table
	// until Apply.
	Open(prefix string, o kernelpath.Options) (KernelPath, error)
	// Forwarding reports whether the network namespace forwards IPv4 and
	// IPv6.
	Forwarding() (ipv4, ipv6 bool)
	// RemoveStale deletes the tables named with prefix that this process
	// did not write (kernelpath.Tables.RemoveStale): call it once this
	// process's relays are Ready.
	RemoveStale(prefix string) error
}

// KernelPath is one relay's kernel data path (a *kernelpath.Path).
type KernelPath interface {
	Apply([]kernelpath.Listener) error
	Forget(backend netip.AddrPort) (int, error)
	Counters() (map[string]kernelpath.Counters, error)
	Flows() (map[uint16]int, error)
	Stop() error
	Close() error
}

// NewKernelTables returns this process's owner of the nftables tables
// (kernelpath.Tables, with a fresh tag); call it once per process.
func NewKernelTables() KernelTables { return nftTables{kernelpath.NewTables()} }

type nftTables struct{ t *kernelpath.Tables }

func (n nftTables) Open(prefix string, o kernelpath.Options) (KernelPath, error) {
	p, err := n.t.Open(prefix, o)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (n nftTables) RemoveStale(prefix string) error { return n.t.RemoveStale(prefix) }

func (nftTables) Forwarding() (ipv4, ipv6 bool) {
	on := func(key string) bool {
		v, err := os.ReadFile(key)
		return err == nil && strings.TrimSpace(string(v)) == "1"
	}
	return on(forwardingKeys[4]), on(forwardingKeys[6])
}

// openKernel starts the kernel data path when Options.Kernel asks for it
// and the relay has UDP listeners. When the kernel refuses (no
// CAP_NET_ADMIN, no nftables) the relay logs it and relays in user space.
func (r *Relay) openKernel() error {
	k := r.opts.Kernel
	if !k.Enabled || !r.hasUDP() {
		return nil
	}
	if r.opts.Token.enabled() {
		return errors.New("a routing token is configured: the kernel places a flow on its first packet without reading the payload")
	}
	fwd, err := forwarding(k.Tables)
	if err != nil {
		return err
	}
	p, err := k.Tables.Open(k.TablePrefix, kernelpath.Options{
		CtMark:           k.CtMark,
		TableSize:        uint32(r.opts.TableSize),
		KeyByAddressOnly: r.opts.KeyByAddressOnly,
		MaxFlows:         r.opts.MaxFlows,
		IdleTimeout:      r.opts.UDPIdleTimeout,
	})
	if err != nil {
		return err
	}
	r.kernelFwd = fwd
	// The first write is done here, before Ready; later ones by
	// syncKernel, of every change after this one.
	select {
	case <-r.kernelTrigger:
	default:
	}
	if err := p.Apply(r.kernelListeners()); err != nil {
		return errors.Join(err, p.Close())
	}
	r.kmu.Lock()
	r.kernel = p
	r.kmu.Unlock()
	r.metrics.kernel.set(p, r.kernelPorts())
	return nil
}

// Kernel sync back-off after a failed write: it doubles up to the most,
// unless a change comes first.
const (
	kernelRetryMin = 200 * time.Millisecond
	kernelRetryMax = 5 * time.Second
)

// syncKernel writes the data-plane state into the kernel whenever it
// changes (signalKernel), until ctx ends; then it stops the path taking
// new flows. It is the path's only writer once open, so the relay's lock
// is never held during a netlink request. A failed write is logged,
// counted and tried again after a back-off or at the next change; the
// relay's sockets place flows meanwhile (the kernel's old table sends
// some of them to the old owners).
func (r *Relay) syncKernel(ctx context.Context, p KernelPath) {
	var retry <-chan time.Time
	backoff := kernelRetryMin
	for {
		select {
		case <-ctx.Done():
			r.stopKernel(p)
			return
		case <-r.kernelTrigger:
		case <-retry:
		}
		forget := r.takeForget() // down before the plane is read: not in it
		if err := p.Apply(r.kernelListeners()); err != nil {
			r.keepForget(forget)
			r.metrics.kernelSyncErrors.Inc()
			r.log.Error("kernel data path: tables not updated, new flows may go to the old owners; trying again",
				"err", err, "backoff", backoff)
			retry = r.clock.After(backoff)
			backoff = min(2*backoff, kernelRetryMax)
			continue
		}
		retry, backoff = nil, kernelRetryMin
		r.forgetFlows(p, forget)
	}
}

// kernelPath is the open kernel path, nil when off.
func (r *Relay) kernelPath() KernelPath {
	r.kmu.Lock()
	defer r.kmu.Unlock()
	return r.kernel
}

// ipFamily is 4 or 6.
type ipFamily int

func familyOf(a netip.Addr) ipFamily {
	if a.Unmap().Is4() {
		return 4
	}
	return 6
}

// forwardingKeys are the sysctls that say whether this network namespace
// forwards IPv4 and IPv6: a translated datagram that is not forwarded is
// dropped, so the kernel takes no flow of a family that is off.
var forwardingKeys = map[ipFamily]string{
	4: "/proc/sys/net/ipv4/ip_forward",
	6: "/proc/sys/net/ipv6/conf/all/forwarding",
}

// forwarding reports the families this network namespace forwards; an
// error when it forwards neither.
func forwarding(k KernelTables) (map[ipFamily]bool, error) {
	v4, v6 := k.Forwarding()
	out := map[ipFamily]bool{4: v4, 6: v6}
	if !v4 && !v6 {
		return nil, fmt.Errorf("this node forwards neither IPv4 nor IPv6 (%s, %s): the kernel would drop the datagrams it translates",
			forwardingKeys[4], forwardingKeys[6])
	}
	return out, nil
}

func (r *Relay) hasUDP() bool {
	for _, l := range r.opts.Listeners {
		if l.Protocol == UDP {
			return true
		}
	}
	return false
}

// kernelPorts maps the UDP listeners' names to their bound ports.
func (r *Relay) kernelPorts() map[string]uint16 {
	out := map[string]uint16{}
	for _, l := range r.opts.Listeners {
		if l.Protocol == UDP {
			out[l.Name] = r.Addr(l.Name).Port()
		}
	}
	return out
}

// kernelListeners is every UDP listener with its Maglev table of the
// current plane as the kernel takes it: a bucket whose backend wants a
// PROXY header, or is of a family the node does not forward, is left to the
// relay. It takes no lock.
func (r *Relay) kernelListeners() []kernelpath.Listener {
	p := r.plane.Load()
	var out []kernelpath.Listener
	for _, l := range r.opts.Listeners {
		if l.Protocol != UDP {
			continue
		}
		t := p.tables[l.Name]
		buckets := make([]netip.AddrPort, t.size())
		for i := range buckets {
			if b := p.backends[t.owner(i)]; b != nil && !b.ProxyProtocol && r.kernelFwd[familyOf(b.Addr)] {
				buckets[i] = b.addr(l)
			}
		}
		bound := r.Addr(l.Name)
		out = append(out, kernelpath.Listener{Name: l.Name, Addr: bound.Addr(), Port: bound.Port(), Buckets: buckets, VIPs: p.vips})
	}
	return out
}

// forgetKernel has the kernel sync end the kernel's flows to b (down), so
// they are placed again, once the kernel's table no longer names b: call it
// after b left the plane. Forgetting them earlier would let their next
// datagrams be placed on b again.
func (r *Relay) forgetKernel(b *backend) {
	r.kmu.Lock()
	on := r.kernel != nil
	if on {
		r.forget = append(r.forget, b)
	}
	r.kmu.Unlock()
	if on {
		r.signalKernel()
	}
}

// takeForget returns and clears the backends whose flows are to be
// forgotten.
func (r *Relay) takeForget() []*backend {
	r.kmu.Lock()
	defer r.kmu.Unlock()
	bs := r.forget
	r.forget = nil
	return bs
}

// keepForget puts back backends whose flows are still to be forgotten
// (their table was not written).
func (r *Relay) keepForget(bs []*backend) {
	r.kmu.Lock()
	r.forget = append(bs, r.forget...)
	r.kmu.Unlock()
}

// forgetFlows ends the kernel's flows to the backends bs.
func (r *Relay) forgetFlows(p KernelPath, bs []*backend) {
	for _, b := range bs {
		r.forgetFlowsOf(p, b)
	}
}

func (r *Relay) forgetFlowsOf(p KernelPath, b *backend) {
	for _, l := range r.opts.Listeners {
		if l.Protocol != UDP {
			continue
		}
		n, err := p.Forget(b.addr(l))
		if err != nil {
			r.log.Error("kernel data path: flows to a down backend not moved", "backend", b.Name, "err", err)
			continue
		}
		r.log.Info("kernel data path: flows to a down backend placed again", "backend", b.Name, "listener", l.Name, "flows", n)
	}
}

// stopKernel makes the kernel place no new flow (they reach the draining
// sockets) and keeps the table until closeKernel, at the end of Run: a
// relay replacing this one has written its own by then (and the process's
// anchor table keeps NAT hooked regardless), so the kernel's flows go on.
func (r *Relay) stopKernel(p KernelPath) {
	if err := p.Stop(); err != nil {
		r.log.Error("kernel data path: stop", "err", err)
	}
}

// closeKernel deletes the relay's table. Flows the kernel placed go on
// until they idle out: their NAT is in conntrack.
func (r *Relay) closeKernel() {
	r.kmu.Lock()
	p := r.kernel
	r.kernel = nil
	r.kmu.Unlock()
	if p == nil {
		return
	}
	r.metrics.kernel.set(nil, nil)
	if err := p.Close(); err != nil {
		r.log.Error("kernel data path: close", "err", err)
	}
}
