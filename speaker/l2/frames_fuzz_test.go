package l2

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// fuzzOwned is what the fuzzed responders own: one address per family.
var fuzzOwned = setOf("198.51.100.10", "2001:db8::10")

// FuzzAnswerARP feeds received frames to the ARP responder's decision
// (answerARP, what the socket loop calls). It never panics; it answers
// only a request for an owned address, with one reason or one reply, and a
// reply is a well-formed ARP reply from ourMAC saying ourMAC has the
// requested address, sent back to the requester.
func FuzzAnswerARP(f *testing.F) {
	them, owned, other := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")
	f.Add(arpRequest(theirMAC, them, owned))
	f.Add(arpRequest(theirMAC, netip.IPv4Unspecified(), owned)) // probe
	f.Add(arpRequest(theirMAC, them, other))
	f.Add(arpRequest(theirMAC, owned, owned)) // announcement
	f.Add(withByte(arpRequest(theirMAC, them, owned), 21, 2))
	f.Add(arpRequest(theirMAC, them, owned)[:30])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := slices.Clone(frame)
		out, to, reason := answerARP(frame, ourMAC, fuzzOwned)
		if !bytes.Equal(in, frame) {
			t.Fatal("answerARP changed the received frame")
		}
		announcedARP(frame, ourMAC) // must not panic either
		if (out == nil) == (reason == "") || (to == nil) != (out == nil) {
			t.Fatalf("reply %x to %v with reason %q: want a reply or a reason", out, to, reason)
		}
		if out == nil {
			return
		}
		if !bytes.Equal(out[:6], to) || !bytes.Equal(out[6:12], ourMAC) {
			t.Fatalf("reply Ethernet header % x, want to %v from %v", out[:12], to, ourMAC)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(out[ethHeaderLen:]); err != nil {
			t.Fatalf("reply is no ARP packet: %v", err)
		}
		req, _ := parseARP(frame)
		if _, ok := fuzzOwned[req.TargetIP]; !ok {
			t.Fatalf("answered for %v, not owned", req.TargetIP)
		}
		if p.Operation != arp.OperationReply || p.SenderIP != req.TargetIP || !bytes.Equal(p.SenderHardwareAddr, ourMAC) ||
			p.TargetIP != req.SenderIP || !bytes.Equal(p.TargetHardwareAddr, req.SenderHardwareAddr) {
			t.Fatalf("reply %+v to request %+v", p, req)
		}
	})
}

// FuzzAnswerNS feeds received frames to the NDP responder's decision
// (answerNS). It never panics; it answers only a solicitation for an owned
// address, and the answer is a Neighbor Advertisement with a valid ICMPv6
// checksum (checked by the ndp package), from the target, for the target,
// carrying ourMAC.
func FuzzAnswerNS(f *testing.F) {
	them, owned, other := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::11")
	snm := netip.MustParseAddr("ff02::1:ff00:10")
	f.Add(ns(them, snm, owned, true))
	f.Add(ns(them, owned, owned, false))                  // unicast, no SLLA
	f.Add(ns(netip.IPv6Unspecified(), snm, owned, false)) // DAD
	f.Add(ns(them, snm, other, true))
	f.Add(truncatedNS(ns(them, snm, owned, true), 20))
	f.Add(nsFrame(theirMAC, ourMAC, them, snm, owned, 64, nil)) // hop limit not 255
	f.Add(nsFrame(theirMAC, ourMAC, them, snm, owned, 255, []byte{1, 0, 0, 0, 0, 0, 0, 0}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := slices.Clone(frame)
		out, to, reason := answerNS(frame, ourMAC, fuzzOwned)
		if !bytes.Equal(in, frame) {
			t.Fatal("answerNS changed the received frame")
		}
		parseNA(frame) // must not panic either
		if (out == nil) == (reason == "") || (to == nil) != (out == nil) {
			t.Fatalf("reply %x to %v with reason %q: want a reply or a reason", out, to, reason)
		}
		if out == nil {
			return
		}
		if len(out) < ethHeaderLen+ipv6HeaderLen || !bytes.Equal(out[:6], to) {
			t.Fatalf("reply % x to %v", out, to)
		}
		ip := out[ethHeaderLen:]
		src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		msg := ip[ipv6HeaderLen:]
		m, err := ndp.ParseMessage(msg)
		if err != nil {
			t.Fatalf("reply is no NDP message: %v", err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			t.Fatalf("reply is a %T", m)
		}
		if want, err := ndp.MarshalMessageChecksum(na, src, dst); err != nil || !bytes.Equal(want, msg) {
			t.Fatalf("reply checksum wrong (%v)", err)
		}
		if _, owned := fuzzOwned[na.TargetAddress]; !owned || src != na.TargetAddress {
			t.Fatalf("advertised %v from %v", na.TargetAddress, src)
		}
		var tlla net.HardwareAddr
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				tlla = l.Addr
			}
		}
		if !bytes.Equal(tlla, ourMAC) {
			t.Fatalf("target link-layer address %v, want %v", tlla, ourMAC)
		}
	})
}
