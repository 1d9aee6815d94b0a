package relay

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

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
	// TablePrefix names the relay's nftables table; the relay appends this
	// process's tag and a unique suffix. Default DefaultKernelTablePrefix.
	// RemoveStaleKernelTables deletes what an earlier process left behind.
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

// processTag names this process's tables, so that a new pier-relay can
// tell an earlier one's apart from its own.
var processTag = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// anchored records the prefixes whose anchor table this process wrote.
var anchored sync.Map

// anchor writes, once per prefix, this process's anchor table
// (kernelpath.Anchor): NAT and conntrack then stay on while relays replace
// their tables, and until the next pier-relay has written its own.
func anchor(prefix string) error {
	if _, done := anchored.Load(prefix); done {
		return nil
	}
	if err := kernelpath.Anchor(fmt.Sprintf("%s_%s_anchor", prefix, processTag)); err != nil {
		return err
	}
	anchored.Store(prefix, true)
	return nil
}

// tableSeq numbers the tables of this process.
var tableSeq atomic.Uint64

// RemoveStaleKernelTables deletes the nftables tables named with prefix
// that this process did not write: those an earlier relay process left
// behind (a SIGKILLed relay cannot delete its own). Call it once this
// process's relays have written their tables (Ready): deleting a
// namespace's last NAT chain unhooks NAT there until the next one is
// written, and the kernel's flows would lose their translation and fall to
// the relay's sockets meanwhile. Otherwise flows already translated keep
// going: their NAT lives in conntrack, not in the table.
func RemoveStaleKernelTables(prefix string) error {
	return kernelpath.RemoveTables(prefix+"_", prefix+"_"+processTag+"_")
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
	fwd, err := forwarding()
	if err != nil {
		return err
	}
	if err := anchor(k.TablePrefix); err != nil {
		return err
	}
	p, err := kernelpath.New(kernelpath.Options{
		Table:            fmt.Sprintf("%s_%s_%d", k.TablePrefix, processTag, tableSeq.Add(1)),
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
	r.kernelFwd = fwd
	if err := p.Apply(r.kernelListenersLocked()); err != nil {
		p.Close()
		return err
	}
	r.kernel = p
	r.metrics.kernel.set(p, r.kernelPorts())
	return nil
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
func forwarding() (map[ipFamily]bool, error) {
	out := map[ipFamily]bool{}
	for f, key := range forwardingKeys {
		v, err := os.ReadFile(key)
		out[f] = err == nil && strings.TrimSpace(string(v)) == "1"
	}
	if !out[4] && !out[6] {
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

// kernelListenersLocked is every UDP listener with its Maglev table as the
// kernel takes it: a bucket whose backend wants a PROXY header, or is of a
// family the node does not forward, is left to the relay.
func (r *Relay) kernelListenersLocked() []kernelpath.Listener {
	var out []kernelpath.Listener
	for _, l := range r.opts.Listeners {
		if l.Protocol != UDP {
			continue
		}
		t := r.tables[l.Name].Load()
		buckets := make([]netip.AddrPort, t.size())
		for i := range buckets {
			if b := r.backends[t.owner(i)]; b != nil && !b.ProxyProtocol && r.kernelFwd[familyOf(b.Addr)] {
				buckets[i] = b.addr(l)
			}
		}
		bound := r.Addr(l.Name)
		out = append(out, kernelpath.Listener{Name: l.Name, Addr: bound.Addr(), Port: bound.Port(), Buckets: buckets, VIPs: r.vips})
	}
	return out
}

// applyKernelLocked writes the current tables into the kernel.
func (r *Relay) applyKernelLocked() {
	if r.kernel == nil || r.kernelStopped {
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

// stopKernel makes the kernel place no new flow (they reach the draining
// sockets) and keeps the table until closeKernel, at the end of Run: a
// relay replacing this one has written its own by then (and the process's
// anchor table keeps NAT hooked regardless), so the kernel's flows go on.
func (r *Relay) stopKernel() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kernel == nil {
		return
	}
	r.kernelStopped = true
	if err := r.kernel.Stop(); err != nil {
		r.log.Error("kernel data path: stop", "err", err)
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
