package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// LocalIfaces lists this node's interfaces that are up with their global
// unicast subnets (loopback and link-local addresses are left out).
func LocalIfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Iface
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagRunning == 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var pfx []netip.Prefix
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsGlobalUnicast() {
				pfx = append(pfx, p.Masked())
			}
		}
		if len(pfx) > 0 {
			slices.SortFunc(pfx, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
			out = append(out, Iface{Name: ifi.Name, Prefixes: pfx})
		}
	}
	return out, nil
}
