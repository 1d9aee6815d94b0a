package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LocalIfaces lists this node's interfaces that are up with their global
// unicast subnets (loopback and link-local addresses are left out). Every
// speaker pass calls it, so it asks the kernel twice (all links, all
// addresses) however many interfaces the node has: the net package asks
// once per interface, and each answer holds every address of the node
// (BenchmarkLocalIfaces).
func LocalIfaces() ([]Iface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	byLink := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if p, ok := globalPrefix(a); ok {
			byLink[a.LinkIndex] = append(byLink[a.LinkIndex], p)
		}
	}
	var out []Iface
	for _, l := range links {
		attrs := l.Attrs()
		const want = unix.IFF_UP | unix.IFF_RUNNING
		if attrs.RawFlags&want != want || attrs.RawFlags&unix.IFF_LOOPBACK != 0 {
			continue
		}
		pfx := byLink[attrs.Index]
		if len(pfx) == 0 {
			continue
		}
		slices.SortFunc(pfx, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
		out = append(out, Iface{Name: attrs.Name, Prefixes: slices.Compact(pfx)})
	}
	return out, nil // in index order, as the net package lists them
}

// globalPrefix is the subnet of a, when a is a global unicast address.
func globalPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	ones, _ := a.Mask.Size()
	if !ip.IsGlobalUnicast() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones).Masked(), true
}
