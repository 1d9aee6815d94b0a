package relay

import (
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// enablePktinfo asks the kernel for each datagram's destination address.
func enablePktinfo(c *net.UDPConn) error {
	if c.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		return ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst, true)
	}
	return ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst, true)
}

// pktinfoSrc marshals the control message that makes a reply leave from src.
// Built once per flow. An IPv4 source on a dual-stack IPv6 socket takes
// IP_PKTINFO: Linux does not apply a v4-mapped IPV6_PKTINFO source to a
// datagram sent to an IPv4 client.
func pktinfoSrc(src netip.Addr, sock6 bool) []byte {
	if sock6 && !src.Unmap().Is4() {
		return (&ipv6.ControlMessage{Src: net.IP(netip.AddrFrom16(src.As16()).AsSlice())}).Marshal()
	}
	return (&ipv4.ControlMessage{Src: net.IP(src.Unmap().AsSlice())}).Marshal()
}

// pktinfoDst finds the destination address in received control messages
// without allocating (x/net's Parse allocates per call).
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return netip.Addr{}, false
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			return netip.AddrFrom4([4]byte(data[8:12])), true // in_pktinfo.ipi_addr
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			return netip.AddrFrom16([16]byte(data[0:16])), true // in6_pktinfo.ipi6_addr
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return netip.Addr{}, false
}
