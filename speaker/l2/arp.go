package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"golang.org/x/net/bpf"
)

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
	arpLen        = 28 // Ethernet/IPv4 ARP body
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
)

// arpFilter lets through every ARP frame the host receives but none it
// sends: malformed frames must reach the responder to be counted.
var arpFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 1},
	bpf.RetConstant{Val: 0xffff},
	bpf.RetConstant{Val: 0},
})

// packetOutgoing is PACKET_OUTGOING, the packet type of frames the host
// itself sends (looped back to packet sockets).
const packetOutgoing = 4

func mustAssemble(prog []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(err)
	}
	return raw
}

// parseARP checks that frame is an Ethernet/IPv4 ARP request and returns
// it, or the reason to drop it.
func parseARP(frame []byte) (*arp.Packet, string) {
	if len(frame) < ethHeaderLen+8 {
		return nil, reasonMalformed
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return nil, reasonForeign
	}
	body := frame[ethHeaderLen:]
	htype, ptype := binary.BigEndian.Uint16(body[0:2]), binary.BigEndian.Uint16(body[2:4])
	if htype != 1 || ptype != 0x0800 {
		return nil, reasonForeign // not Ethernet, or not IPv4
	}
	if body[4] != 6 || body[5] != 4 || len(body) < arpLen {
		return nil, reasonMalformed
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(body[:arpLen]); err != nil {
		return nil, reasonMalformed
	}
	if p.Operation != arp.OperationRequest {
		return nil, reasonForeign
	}
	if p.SenderHardwareAddr[0]&1 != 0 {
		return nil, reasonInvalid // multicast or broadcast sender
	}
	return &p, ""
}

// announcedARP returns the address an ARP announcement from another host
// claims: a request or reply whose sender and target address are the same
// (RFC 5227 2.3), from a MAC other than mac.
func announcedARP(frame []byte, mac net.HardwareAddr) (netip.Addr, bool) {
	if len(frame) < ethHeaderLen+arpLen || binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return netip.Addr{}, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(frame[ethHeaderLen : ethHeaderLen+arpLen]); err != nil {
		return netip.Addr{}, false
	}
	if p.SenderIP != p.TargetIP || !p.SenderIP.Is4() || bytes.Equal(p.SenderHardwareAddr, mac) {
		return netip.Addr{}, false
	}
	return p.SenderIP, true
}

// answerARP decides whether to answer frame and builds the reply: an ARP
// reply saying that mac has the requested address, sent to the requester.
// A probe (sender 0.0.0.0) is answered too, which tells the prober that the
// address is taken.
func answerARP(frame []byte, mac net.HardwareAddr, owned addrSet) ([]byte, net.HardwareAddr, string) {
	req, reason := parseARP(frame)
	if reason != "" {
		return nil, nil, reason
	}
	if _, ok := owned[req.TargetIP]; !ok {
		return nil, nil, reasonNotOwned
	}
	p, err := arp.NewPacket(arp.OperationReply, mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err != nil {
		return nil, nil, reasonInvalid
	}
	out, err := arpFrame(p, req.SenderHardwareAddr)
	if err != nil {
		return nil, nil, reasonInvalid
	}
	return out, req.SenderHardwareAddr, ""
}

// gratuitousARP builds an ARP announcement (RFC 5227 2.3): a broadcast
// request whose sender and target address are both addr. Neighbours that
// have an entry for addr update it to mac.
func gratuitousARP(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, addr, zeroMAC, addr)
	if err != nil {
		return nil, err
	}
	return arpFrame(p, broadcastMAC)
}

func arpFrame(p *arp.Packet, dst net.HardwareAddr) ([]byte, error) {
	body, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(ethHeader(dst, p.SenderHardwareAddr, etherTypeARP), body...), nil
}

func ethHeader(dst, src net.HardwareAddr, etherType uint16) []byte {
	b := make([]byte, ethHeaderLen, 128)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return b
}
