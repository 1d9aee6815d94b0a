package l2

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

func parseMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

func withByte(b []byte, i int, v byte) []byte {
	b = slices.Clone(b)
	b[i] = v
	return b
}

// arpRequest is a broadcast who-has for target from (hw, ip).
func arpRequest(hw net.HardwareAddr, ip, target netip.Addr) []byte {
	p, err := arp.NewPacket(arp.OperationRequest, hw, ip, zeroMAC, target)
	if err != nil {
		panic(err)
	}
	f, err := arpFrame(p, broadcastMAC)
	if err != nil {
		panic(err)
	}
	return f
}

// nsFrame builds a Neighbor Solicitation for target, checksummed by the
// ndp package (not by the code under test), with raw option bytes.
func nsFrame(from, to net.HardwareAddr, src, dst, target netip.Addr, hopLimit byte, options []byte) []byte {
	msg, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: target}, src, dst)
	if err != nil {
		panic(err)
	}
	if len(options) > 0 { // redo the checksum over the options too
		msg = append(msg, options...)
		msg[2], msg[3] = 0, 0
		binary.BigEndian.PutUint16(msg[2:4], icmpChecksum(src, dst, msg))
	}
	ip := ipv6Header(src, dst, len(msg))
	ip[7] = hopLimit
	return slices.Concat(ethHeader(to, from, etherTypeIPv6), ip, msg)
}

// truncatedNS cuts a solicitation's ICMPv6 message to n bytes, with an IPv6
// payload length to match. (A frame shorter than its IPv6 header says does
// not reach the responder: the kernel drops it on the way.)
func truncatedNS(frame []byte, n int) []byte {
	f := slices.Clone(frame[:ethHeaderLen+ipv6HeaderLen+n])
	binary.BigEndian.PutUint16(f[ethHeaderLen+4:], uint16(n))
	return f
}
