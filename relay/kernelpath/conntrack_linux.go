package kernelpath

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// flowFilter matches the path's UDP flows, to one backend when backend is
// valid.
type flowFilter struct {
	mark    uint32
	backend netip.AddrPort
}

func (f flowFilter) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	if c.Mark&f.mark == 0 || c.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	if !f.backend.IsValid() {
		return true
	}
	src, ok := netip.AddrFromSlice(c.Reverse.SrcIP)
	return ok && src.Unmap() == f.backend.Addr().Unmap() && c.Reverse.SrcPort == f.backend.Port()
}

func inetFamily(a netip.Addr) netlink.InetFamily {
	if a.Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// Forget ends the kernel's flows to backend (one that went down): their
// next datagram is a new flow, placed again.
func (p *Path) Forget(backend netip.AddrPort) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, err := p.ct.ConntrackDeleteFilters(netlink.ConntrackTable, inetFamily(backend.Addr()),
		flowFilter{mark: p.opts.CtMark, backend: backend})
	if err != nil {
		return int(n), fmt.Errorf("kernelpath: forget flows to %s: %w", backend, err)
	}
	return int(n), nil
}

// Flows counts the kernel's flows by listener port (both families).
func (p *Path) Flows() (map[uint16]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint16]int{}
	all := flowFilter{mark: p.opts.CtMark}
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := p.ct.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			return nil, fmt.Errorf("kernelpath: list flows: %w", err)
		}
		for _, c := range flows {
			if all.MatchConntrackFlow(c) {
				out[c.Forward.DstPort]++
			}
		}
	}
	return out, nil
}
