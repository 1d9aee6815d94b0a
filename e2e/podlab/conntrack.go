package podlab

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Conntrack describes, node by node, the connection-tracking entries of
// the flow from src to dst (original direction) and where the kernel
// sends them: for a flow that stopped being answered, a stale entry (no
// translation, or one to an endpoint that is gone) shows here.
func (e *Env) Conntrack(src, dst netip.AddrPort) string {
	var b strings.Builder
	for _, n := range e.Nodes {
		var flows []*netlink.ConntrackFlow
		err := n.Host.Do(func() (err error) {
			flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
			return err
		})
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", n.Name, err)
			continue
		}
		for _, f := range flows {
			o := f.Forward
			if o.SrcPort == src.Port() && o.DstPort == dst.Port() && o.SrcIP.Equal(src.Addr().AsSlice()) && o.DstIP.Equal(dst.Addr().AsSlice()) {
				fmt.Fprintf(&b, "%s: %s\n", n.Name, f)
			}
		}
	}
	if b.Len() == 0 {
		return "no entry on any node\n"
	}
	return b.String()
}
