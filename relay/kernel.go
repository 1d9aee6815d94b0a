package relay

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"

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
	// TablePrefix names the relay's nftables table; the relay appends a
	// unique suffix. Default DefaultKernelTablePrefix. RemoveKernelTables
	// deletes what an earlier process left behind.
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

// RemoveKernelTables deletes the nftables tables whose names start with
// prefix: those an earlier relay process left behind (a SIGKILLed relay
// cannot delete its own). Flows already translated keep going: their NAT
// lives in conntrack, not in the table.
func RemoveKernelTables(prefix string) error { return kernelpath.RemoveTables(prefix) }

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
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	p, err := kernelpath.New(kernelpath.Options{
		Table:            k.TablePrefix + "_" + hex.EncodeToString(suffix),
		CtMark:           k.CtMark,
		TableSize:        uint32(r.opts.TableSize),
		KeyByAddressOnly: r.opts.KeyByAddressOnly,
		MaxFlows:         r.opts.MaxFlows,
		IdleTimeout:      r.opts.UDPIdleTimeout,
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := p.Apply(r.kernelListenersLocked()); err != nil {
		p.Close()
		return err
	}
	r.kernel = p
	r.metrics.kernel.set(p, r.kernelPorts())
	return nil
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

// kernelListenersLocked is every UDP listener with its Maglev table as the
// kernel takes it: a bucket whose backend wants a PROXY header is left to
// the relay.
func (r *Relay) kernelListenersLocked() []kernelpath.Listener {
	var out []kernelpath.Listener
	for _, l := range r.opts.Listeners {
		if l.Protocol != UDP {
			continue
		}
		t := r.tables[l.Name].Load()
		buckets := make([]netip.AddrPort, t.size())
		for i := range buckets {
			if b := r.backends[t.owner(i)]; b != nil && !b.ProxyProtocol {
				buckets[i] = b.addr(l)
			}
		}
		bound := r.Addr(l.Name)
		out = append(out, kernelpath.Listener{Name: l.Name, Addr: bound.Addr(), Port: bound.Port(), Buckets: buckets})
	}
	return out
}

// applyKernelLocked writes the current tables into the kernel.
func (r *Relay) applyKernelLocked() {
	if r.kernel == nil {
		return
	}
	if err := r.kernel.Apply(r.kernelListenersLocked()); err != nil {
		r.log.Error("kernel data path: tables not updated; new flows may go to the old owners", "err", err)
	}
}

// forgetKernel ends the kernel's flows to b (down) so they are placed again.
func (r *Relay) forgetKernel(b *backend) {
	r.mu.Lock()
	p := r.kernel
	r.mu.Unlock()
	if p == nil {
		return
	}
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

// closeKernel deletes the relay's table. Flows the kernel placed go on
// until they idle out: their NAT is in conntrack.
func (r *Relay) closeKernel() {
	r.mu.Lock()
	p := r.kernel
	r.kernel = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	r.metrics.kernel.set(nil, nil)
	if err := p.Close(); err != nil {
		r.log.Error("kernel data path: close", "err", err)
	}
}
