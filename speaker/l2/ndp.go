package l2

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

const (
	ipv6HeaderLen = 40
	protoICMPv6   = 58
	icmpTypeNS    = 135
	icmpTypeNA    = 136
	nsLen         = 24 // ICMPv6 header and target address
	ndpHopLimit   = 255
)

var allNodes = netip.MustParseAddr("ff02::1")

// nsFilter lets through Neighbor Solicitations and Advertisements the host
// receives (unicast and multicast alike; advertisements tell a yielding
// node that a successor announced an address), nothing it sends and no
// other IPv6 traffic: the socket sits on the data path of the addresses it
// announces. Messages behind extension headers are not seen (nobody sends
// them).
var nsFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 5},
	bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1}, // next header
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
	bpf.LoadAbsolute{Off: ethHeaderLen + ipv6HeaderLen, Size: 1}, // ICMPv6 type
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNS, SkipTrue: 2},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeNA, SkipTrue: 1},
	bpf.RetConstant{Val: 0},
	bpf.RetConstant{Val: 0xffff},
})

// parseNA returns the target of a Neighbor Advertisement and the MAC that
// sent it; ok is false for any other frame.
func parseNA(frame []byte) (target netip.Addr, from net.HardwareAddr, ok bool) {
	var s solicitation
	icmp, reason := icmpPayload(frame, &s)
	if reason != "" || len(icmp) < nsLen || icmp[0] != icmpTypeNA {
		return netip.Addr{}, nil, false
	}
	return netip.AddrFrom16([16]byte(icmp[8:24])), s.from, true
}

// solicitation is what the responder needs from a Neighbor Solicitation.
type solicitation struct {
	src, dst netip.Addr       // IPv6 header
	from     net.HardwareAddr // Ethernet source
	slla     net.HardwareAddr // source link-layer address option, if any
	target   netip.Addr
}

// parseNS checks frame against RFC 4861 7.1.1 and returns the solicitation
// or the reason to drop it.
func parseNS(frame []byte) (solicitation, string) {
	var s solicitation
	icmp, reason := icmpPayload(frame, &s)
	if reason != "" {
		return s, reason
	}
	if len(icmp) < 4 || icmp[0] != icmpTypeNS {
		return s, reasonForeign
	}
	if frame[ethHeaderLen+7] != ndpHopLimit || icmp[1] != 0 {
		return s, reasonInvalid // may come from off-link
	}
	if len(icmp) < nsLen || icmpChecksum(s.src, s.dst, icmp) != 0 || !optionsWellFormed(icmp[nsLen:]) {
		return s, reasonMalformed
	}
	m, err := ndp.ParseMessage(icmp)
	if err != nil {
		return s, reasonMalformed
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return s, reasonForeign
	}
	s.target = ns.TargetAddress
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			s.slla = lla.Addr
		}
	}
	return s, checkNS(s)
}

// icmpPayload checks the Ethernet and IPv6 headers and returns the ICMPv6
// message, trimmed to the IPv6 payload length.
func icmpPayload(frame []byte, s *solicitation) ([]byte, string) {
	if len(frame) < ethHeaderLen+ipv6HeaderLen {
		return nil, reasonMalformed
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 {
		return nil, reasonForeign
	}
	ip := frame[ethHeaderLen:]
	if ip[0]>>4 != 6 {
		return nil, reasonMalformed
	}
	if ip[6] != protoICMPv6 {
		return nil, reasonForeign
	}
	n := int(binary.BigEndian.Uint16(ip[4:6]))
	if len(ip) < ipv6HeaderLen+n {
		return nil, reasonMalformed
	}
	s.src = netip.AddrFrom16([16]byte(ip[8:24]))
	s.dst = netip.AddrFrom16([16]byte(ip[24:40]))
	s.from = net.HardwareAddr(frame[6:12])
	return ip[ipv6HeaderLen : ipv6HeaderLen+n], ""
}

// optionsWellFormed reports whether b is a sequence of options with
// non-zero lengths that ends exactly at the end of b (RFC 4861 4.6: a
// zero-length option must make the receiver drop the packet).
func optionsWellFormed(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 2 || b[1] == 0 || int(b[1])*8 > len(b) {
			return false
		}
		b = b[int(b[1])*8:]
	}
	return true
}

func checkNS(s solicitation) string {
	switch {
	case s.target.IsMulticast(), s.src.IsMulticast():
		return reasonInvalid
	case s.src.IsUnspecified() && (!isSolicitedNode(s.dst) || s.slla != nil):
		return reasonInvalid // DAD probes go to the solicited-node group, without SLLA
	case s.slla != nil && len(s.slla) != 6:
		return reasonMalformed
	}
	return ""
}

var solicitedNodes = netip.MustParsePrefix("ff02::1:ff00:0/104")

func isSolicitedNode(a netip.Addr) bool { return solicitedNodes.Contains(a) }

// answerNS decides whether to answer frame and builds the solicited
// Neighbor Advertisement (RFC 4861 7.2.4): Solicited and Override set, our
// MAC as target link-layer address, sent to the solicitation's source, or
// to all-nodes (Solicited clear) when the source is unspecified (DAD).
// Like the Linux kernel, it sends from the target address itself: some
// resolvers (ndisc6) take only an advertisement whose source is the target.
func answerNS(frame []byte, mac net.HardwareAddr, owned addrSet) ([]byte, net.HardwareAddr, string) {
	s, reason := parseNS(frame)
	if reason != "" {
		return nil, nil, reason
	}
	if _, ok := owned[s.target]; !ok {
		return nil, nil, reasonNotOwned
	}
	na := advert{mac: mac, src: s.target, target: s.target, dst: s.src, dstMAC: s.slla, solicited: true}
	if s.src.IsUnspecified() {
		na.dst, na.dstMAC, na.solicited = allNodes, nil, false
	}
	if na.dstMAC == nil {
		na.dstMAC = s.from
		if na.dst.IsMulticast() {
			na.dstMAC = multicastMAC(na.dst)
		}
	}
	out, err := na.frame()
	if err != nil {
		return nil, nil, reasonInvalid
	}
	return out, na.dstMAC, ""
}

// unsolicitedNA builds the Neighbor Advertisement sent to all nodes when
// this node takes addr over (RFC 4861 7.2.6): Override set, Solicited
// clear, sent from addr.
func unsolicitedNA(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	na := advert{mac: mac, src: addr, target: addr, dst: allNodes, dstMAC: multicastMAC(allNodes)}
	return na.frame()
}

// advert is a Neighbor Advertisement to put on the wire.
type advert struct {
	mac       net.HardwareAddr // ours: Ethernet source and target LLA
	src, dst  netip.Addr
	dstMAC    net.HardwareAddr
	target    netip.Addr
	solicited bool
}

func (na advert) frame() ([]byte, error) {
	msg, err := ndp.MarshalMessage(&ndp.NeighborAdvertisement{
		Solicited:     na.solicited,
		Override:      true,
		TargetAddress: na.target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: na.mac}},
	})
	if err != nil {
		return nil, err
	}
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:4], icmpChecksum(na.src, na.dst, msg))
	b := ethHeader(na.dstMAC, na.mac, etherTypeIPv6)
	b = append(b, ipv6Header(na.src, na.dst, len(msg))...)
	return append(b, msg...), nil
}

func ipv6Header(src, dst netip.Addr, payload int) []byte {
	h := make([]byte, ipv6HeaderLen)
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:6], uint16(payload))
	h[6], h[7] = protoICMPv6, ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return h
}

// multicastMAC maps an IPv6 multicast address to its Ethernet address
// (RFC 2464 7).
func multicastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// icmpChecksum is the ICMPv6 checksum of msg with the IPv6 pseudo-header
// (RFC 8200 8.1). Over a message that carries its checksum it is 0 when the
// checksum is right.
func icmpChecksum(src, dst netip.Addr, msg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	sum := sum16(0, s[:])
	sum = sum16(sum, d[:])
	sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + protoICMPv6
	sum = sum16(sum, msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
