package kernelpath

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Listener is one UDP listener of the relay and its Maglev table.
type Listener struct {
	// Name is unique among the listeners (it names the nftables objects).
	Name string
	// Addr is the address the listener takes datagrams on; unspecified
	// (0.0.0.0 or ::) means every local address of both families.
	Addr netip.Addr
	Port uint16
	// VIPs are addresses, not local to the node, that the listener also
	// takes datagrams to: the Relay's LoadBalancer addresses, which
	// kube-proxy would otherwise translate to the node's own address (and
	// so to the relay's socket) first. Only families the listener takes
	// count.
	VIPs []netip.Addr
	// Buckets is the Maglev table: the backend address and port owning each
	// bucket, len Options.TableSize. An invalid entry leaves the bucket to
	// the relay's socket.
	Buckets []netip.AddrPort
}

// Options configures a Path.
type Options struct {
	// Table is the nftables table's name (family inet).
	Table string
	// CtMark is the conntrack mark bit that tags the path's flows.
	CtMark uint32
	// TableSize is the Maglev table size (the hash modulus).
	TableSize uint32
	// KeyByAddressOnly hashes the client address only.
	KeyByAddressOnly bool
	// MaxFlows bounds the flows per listener that the kernel takes
	// (conntrack count); 0 means no bound.
	MaxFlows int
	// IdleTimeout expires a flow (a conntrack timeout policy); 0 leaves the
	// node's conntrack UDP timeouts.
	IdleTimeout time.Duration
}

// Counters are one listener's kernel counters: in is client to backend.
type Counters struct {
	PacketsIn, BytesIn, PacketsOut, BytesOut uint64
	// NewFlows is the flows the kernel placed; Refused those dropped because
	// MaxFlows was reached.
	NewFlows, Refused uint64
}

func (o Options) validate() error {
	switch {
	case o.Table == "" || len(o.Table) > 200 || strings.ContainsAny(o.Table, " \"'"):
		return fmt.Errorf("kernelpath: table name %q: want a short word", o.Table)
	case o.CtMark == 0 || o.CtMark&(o.CtMark-1) != 0:
		return fmt.Errorf("kernelpath: conntrack mark %#x: want a single bit", o.CtMark)
	case o.TableSize == 0:
		return errors.New("kernelpath: table size 0")
	case o.MaxFlows < 0 || o.IdleTimeout < 0:
		return errors.New("kernelpath: negative flow limit or idle timeout")
	}
	return nil
}

func validateListeners(ls []Listener, size uint32) error {
	seen := map[string]bool{}
	for _, l := range ls {
		if l.Name == "" || seen[l.Name] || len(l.Name) > 40 {
			return fmt.Errorf("kernelpath: listener %q: empty, too long or duplicate name", l.Name)
		}
		seen[l.Name] = true
		if !l.Addr.IsValid() || l.Port == 0 {
			return fmt.Errorf("kernelpath: listener %s: invalid address %s port %d", l.Name, l.Addr, l.Port)
		}
		for _, v := range l.VIPs {
			if !v.IsValid() || v.IsUnspecified() {
				return fmt.Errorf("kernelpath: listener %s: invalid address %s", l.Name, v)
			}
		}
		if len(l.Buckets) != int(size) {
			return fmt.Errorf("kernelpath: listener %s: %d buckets, want %d", l.Name, len(l.Buckets), size)
		}
	}
	return nil
}
