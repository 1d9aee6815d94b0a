package l2

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	theirMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	their4   = netip.MustParseAddr("198.51.100.10")
	their6   = netip.MustParseAddr("2001:db8:100::10")
	ll6      = netip.MustParseAddr("fe80::10")
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func setOf(s ...string) addrSet {
	out := addrSet{}
	for _, a := range addrs(s...) {
		out[a] = struct{}{}
	}
	return out
}

var cmpAddrs = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

func TestGroup(t *testing.T) {
	tests := []struct {
		name    string
		desired []Announcement
		want    map[linkKey]addrSet
		errs    int
	}{
		{"empty", nil, map[linkKey]addrSet{}, 0},
		{"families and interfaces split, duplicates merged, mapped unmapped", []Announcement{
			{netip.MustParseAddr("198.51.100.200"), "eth1"},
			{netip.MustParseAddr("::ffff:198.51.100.200"), "eth1"},
			{netip.MustParseAddr("2001:db8:100::200"), "eth1"},
			{netip.MustParseAddr("198.51.100.201"), "eth2"},
		}, map[linkKey]addrSet{
			{"eth1", ipv4}: setOf("198.51.100.200"),
			{"eth1", ipv6}: setOf("2001:db8:100::200"),
			{"eth2", ipv4}: setOf("198.51.100.201"),
		}, 0},
		{"invalid ones left out", []Announcement{
			{netip.Addr{}, "eth1"},
			{netip.MustParseAddr("198.51.100.200"), ""},
			{netip.MustParseAddr("198.51.100.200"), "a/b"},
			{netip.MustParseAddr("224.0.0.1"), "eth1"},
			{netip.MustParseAddr("255.255.255.255"), "eth1"},
			{netip.MustParseAddr("::"), "eth1"},
			{netip.MustParseAddr("::1"), "eth1"},
			{netip.MustParseAddr("198.51.100.202"), "eth1"},
		}, map[linkKey]addrSet{{"eth1", ipv4}: setOf("198.51.100.202")}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := group(tt.desired)
			if diff := cmp.Diff(tt.want, got, cmpAddrs, cmp.AllowUnexported(linkKey{})); diff != "" {
				t.Errorf("group (-want +got):\n%s", diff)
			}
			n := 0
			if err != nil {
				n = len(err.(interface{ Unwrap() []error }).Unwrap())
			}
			if n != tt.errs || (n > 0 && !errors.Is(err, ErrInvalid)) {
				t.Errorf("errors = %v, want %d ErrInvalid", err, tt.errs)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		cur, want addrSet
		change    change
	}{
		{"same", setOf("198.51.100.1"), setOf("198.51.100.1"), change{}},
		{"from nothing", nil, setOf("198.51.100.2", "198.51.100.1"), change{add: addrs("198.51.100.1", "198.51.100.2")}},
		{"to nothing", setOf("198.51.100.1"), nil, change{remove: addrs("198.51.100.1")}},
		{"both", setOf("198.51.100.1", "198.51.100.2"), setOf("198.51.100.2", "198.51.100.3"),
			change{add: addrs("198.51.100.3"), remove: addrs("198.51.100.1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diff(tt.cur, tt.want)
			if d := cmp.Diff(tt.change, got, cmpAddrs, cmp.AllowUnexported(change{})); d != "" {
				t.Errorf("diff (-want +got):\n%s", d)
			}
			if got.empty() != (len(tt.change.add)+len(tt.change.remove) == 0) {
				t.Errorf("empty() = %v", got.empty())
			}
		})
	}
}

func TestAnswerARP(t *testing.T) {
	owned := setOf("198.51.100.200")
	req := arpRequest(theirMAC, their4, vip4)
	tests := []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"request for owned", req, ""},
		{"probe for owned", arpRequest(theirMAC, netip.IPv4Unspecified(), vip4), ""},
		{"padded to 60 bytes", append(slices.Clone(req), make([]byte, 18)...), ""},
		{"not owned", arpRequest(theirMAC, their4, netip.MustParseAddr("198.51.100.201")), reasonNotOwned},
		{"empty", nil, reasonMalformed},
		{"truncated header", req[:ethHeaderLen+7], reasonMalformed},
		{"truncated body", req[:ethHeaderLen+27], reasonMalformed},
		{"hardware type 6", withByte(req, ethHeaderLen+1, 6), reasonForeign},
		{"protocol IPv6", withByte(withByte(req, ethHeaderLen+2, 0x86), ethHeaderLen+3, 0xdd), reasonForeign},
		{"hardware length 8", withByte(req, ethHeaderLen+4, 8), reasonMalformed},
		{"protocol length 16", withByte(req, ethHeaderLen+5, 16), reasonMalformed},
		{"reply", withByte(req, ethHeaderLen+7, 2), reasonForeign},
		{"not ARP", withByte(req, 12, 0x86), reasonForeign},
		{"broadcast sender", arpRequest(broadcastMAC, their4, vip4), reasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, dst, reason := answerARP(tt.frame, ourMAC, owned)
			if reason != tt.reason {
				t.Fatalf("reason %q, want %q", reason, tt.reason)
			}
			if reason != "" {
				return
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(reply[ethHeaderLen:]); err != nil {
				t.Fatal(err)
			}
			want := arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
				Operation: arp.OperationReply, SenderHardwareAddr: ourMAC, SenderIP: vip4,
				TargetHardwareAddr: theirMAC, TargetIP: p.TargetIP}
			if diff := cmp.Diff(want, p, cmpAddrs); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(theirMAC, dst); diff != "" || !slices.Equal(reply[:12], slices.Concat(theirMAC, ourMAC)) {
				t.Errorf("sent to %s, Ethernet header % x", dst, reply[:14])
			}
		})
	}
}

func TestGratuitousARP(t *testing.T) {
	f, err := gratuitousARP(ourMAC, vip4)
	if err != nil {
		t.Fatal(err)
	}
	if !isGratuitousARP(vip4)(f) || !slices.Equal(f[:6], broadcastMAC) {
		t.Errorf("not a broadcast ARP announcement: % x", f)
	}
}

// ns builds a solicitation frame with a valid checksum.
func ns(src, dst, target netip.Addr, slla bool) []byte {
	var opts []byte
	if slla {
		opts = slices.Concat([]byte{1, 1}, theirMAC)
	}
	return nsFrame(theirMAC, ourMAC, src, dst, target, 255, opts)
}

func TestAnswerNS(t *testing.T) {
	owned := setOf("2001:db8:100::200")
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	valid := ns(their6, snm, vip6, true)
	tests := []struct {
		name   string
		frame  []byte
		reason string
		want   na
	}{
		{"multicast with SLLA", valid, "", na{vip6, their6, vip6, theirMAC.String(), ourMAC.String(), true, true, false}},
		{"unicast NUD without SLLA: back to the frame's source", ns(their6, vip6, vip6, false), "",
			na{vip6, their6, vip6, theirMAC.String(), ourMAC.String(), true, true, false}},
		{"from link-local", ns(ll6, snm, vip6, true), "", na{vip6, ll6, vip6, theirMAC.String(), ourMAC.String(), true, true, false}},
		{"DAD: to all nodes, not solicited", ns(netip.IPv6Unspecified(), snm, vip6, false), "",
			na{vip6, allNodes, vip6, "33:33:00:00:00:01", ourMAC.String(), false, true, false}},
		{"padded", append(slices.Clone(valid), 0, 0, 0, 0), "", na{vip6, their6, vip6, theirMAC.String(), ourMAC.String(), true, true, false}},
		{"not owned", ns(their6, snm, netip.MustParseAddr("2001:db8:100::201"), true), reasonNotOwned, na{}},
		{"DAD with SLLA", ns(netip.IPv6Unspecified(), snm, vip6, true), reasonInvalid, na{}},
		{"DAD to unicast", ns(netip.IPv6Unspecified(), vip6, vip6, false), reasonInvalid, na{}},
		{"multicast target", ns(their6, snm, snm, true), reasonInvalid, na{}},
		{"hop limit 64", withByte(valid, ethHeaderLen+7, 64), reasonInvalid, na{}},
		{"code 1", fixSum(withByte(valid, ethHeaderLen+ipv6HeaderLen+1, 1)), reasonInvalid, na{}},
		{"bad checksum", withByte(valid, len(valid)-1, 0), reasonMalformed, na{}},
		{"zero-length option", nsFrame(theirMAC, ourMAC, their6, snm, vip6, 255, []byte{1, 0, 0, 0, 0, 0, 0, 0}), reasonMalformed, na{}},
		{"option past the end", nsFrame(theirMAC, ourMAC, their6, snm, vip6, 255, []byte{1, 2, 0, 0, 0, 0, 0, 0}), reasonMalformed, na{}},
		{"SLLA of 14 bytes", nsFrame(theirMAC, ourMAC, their6, snm, vip6, 255, make16(1, 2)), reasonMalformed, na{}},
		{"short ICMPv6", truncatedNS(valid, 10), reasonMalformed, na{}},
		{"shorter than its payload length", valid[:len(valid)-4], reasonMalformed, na{}},
		{"no IPv6 header", valid[:ethHeaderLen+20], reasonMalformed, na{}},
		{"IP version 4", withByte(valid, ethHeaderLen, 0x45), reasonMalformed, na{}},
		{"UDP", withByte(valid, ethHeaderLen+6, 17), reasonForeign, na{}},
		{"echo request", fixSum(withByte(valid, ethHeaderLen+ipv6HeaderLen, 128)), reasonForeign, na{}},
		{"not IPv6", withByte(valid, 12, 0x08), reasonForeign, na{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, dst, reason := answerNS(tt.frame, ourMAC, owned)
			if reason != tt.reason {
				t.Fatalf("reason %q, want %q", reason, tt.reason)
			}
			if reason != "" {
				return
			}
			got := decodeNA(t, reply)
			if diff := cmp.Diff(tt.want, got, cmpAddrs); diff != "" {
				t.Errorf("advertisement (-want +got):\n%s", diff)
			}
			if dst.String() != got.DstMAC {
				t.Errorf("written to %s, frame addressed to %s", dst, got.DstMAC)
			}
		})
	}
}

func make16(typ, length byte) []byte {
	b := make([]byte, int(length)*8)
	b[0], b[1] = typ, length
	return b
}

// fixSum recomputes the ICMPv6 checksum of a solicitation frame.
func fixSum(f []byte) []byte {
	ip := f[ethHeaderLen:]
	msg := ip[ipv6HeaderLen:]
	msg[2], msg[3] = 0, 0
	sum := icmpChecksum(netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), msg)
	msg[2], msg[3] = byte(sum>>8), byte(sum)
	return f
}

// na is what the tests check of a Neighbor Advertisement frame.
type na struct {
	Src, Dst, Target           netip.Addr
	DstMAC, TLLA               string
	Solicited, Override, Route bool
}

// decodeNA checks an advertisement frame's headers and checksum (with the
// ndp package's own checksum code) and returns its fields.
func decodeNA(t *testing.T, f []byte) (out na) {
	t.Helper()
	ip := f[ethHeaderLen:]
	if ip[0] != 0x60 || ip[6] != protoICMPv6 || ip[7] != 255 || int(ip[4])<<8|int(ip[5]) != len(ip)-ipv6HeaderLen {
		t.Fatalf("bad IPv6 header % x", ip[:ipv6HeaderLen])
	}
	out.Src, out.Dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	msg := ip[ipv6HeaderLen:]
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	na := m.(*ndp.NeighborAdvertisement)
	want, err := ndp.MarshalMessageChecksum(na, out.Src, out.Dst)
	if err != nil || !slices.Equal(want, msg) {
		t.Errorf("checksum: ndp computes % x, frame has % x (%v)", want[2:4], msg[2:4], err)
	}
	if src := net.HardwareAddr(f[6:12]); src.String() != ourMAC.String() {
		t.Errorf("Ethernet source %s", src)
	}
	out.DstMAC = net.HardwareAddr(f[0:6]).String()
	out.Target, out.Solicited, out.Override, out.Route = na.TargetAddress, na.Solicited, na.Override, na.Router
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			out.TLLA = lla.Addr.String()
		}
	}
	return out
}

func TestUnsolicitedNA(t *testing.T) {
	f, err := unsolicitedNA(ourMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeNA(t, f)
	if got.Dst != allNodes || got.DstMAC != "33:33:00:00:00:01" || got.Solicited || !got.Override ||
		got.Target != vip6 || got.TLLA != ourMAC.String() {
		t.Errorf("unsolicited NA = %+v", got)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{GratuitousCount: -2}, {GratuitousInterval: -time.Second}, {Periodic: -time.Second}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	a, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.opts.GratuitousCount != DefaultGratuitousCount || a.opts.GratuitousInterval != DefaultGratuitousInterval {
		t.Errorf("defaults not applied: %+v", a.opts)
	}
	if a, _ := New(Options{GratuitousCount: -1}); a.opts.GratuitousCount != 0 {
		t.Errorf("GratuitousCount -1 gave %d bursts", a.opts.GratuitousCount)
	}
}

// TestSetWaitsForRunAndFailsAfter needs no sockets.
func TestSetWaitsForRunAndFailsAfter(t *testing.T) {
	a, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Set(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Set before Run: %v, want the context's error", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(runCtx) }()
	if err := a.Set(context.Background(), nil); err != nil {
		t.Errorf("Set(nil) while running: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := a.Set(context.Background(), nil); !errors.Is(err, ErrStopped) {
		t.Errorf("Set after Run: %v, want ErrStopped", err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Errorf("second Run accepted")
	}
}

func BenchmarkAnswerARP(b *testing.B) {
	owned := setOf("198.51.100.200")
	req := arpRequest(theirMAC, their4, vip4)
	for b.Loop() {
		if _, _, r := answerARP(req, ourMAC, owned); r != "" {
			b.Fatal(r)
		}
	}
}

func BenchmarkAnswerNS(b *testing.B) {
	owned := setOf("2001:db8:100::200")
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	req := ns(their6, snm, vip6, true)
	for b.Loop() {
		if _, _, r := answerNS(req, ourMAC, owned); r != "" {
			b.Fatal(r)
		}
	}
}

func TestAnnounced(t *testing.T) {
	mustFrame := func(f []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	reply, err := arp.NewPacket(arp.OperationReply, theirMAC, vip4, broadcastMAC, vip4)
	if err != nil {
		t.Fatal(err)
	}
	request, err := arp.NewPacket(arp.OperationRequest, theirMAC, netip.MustParseAddr("198.51.100.10"), zeroMAC, vip4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		fam        family
		frame      []byte
		want       netip.Addr
		isNA, isOK bool
	}{
		{"gratuitous ARP from another host", ipv4, mustFrame(gratuitousARP(theirMAC, vip4)), vip4, false, true},
		{"gratuitous ARP reply from another host", ipv4, mustFrame(arpFrame(reply, broadcastMAC)), vip4, false, true},
		{"our own gratuitous ARP", ipv4, mustFrame(gratuitousARP(ourMAC, vip4)), netip.Addr{}, false, false},
		{"a request", ipv4, mustFrame(arpFrame(request, broadcastMAC)), netip.Addr{}, false, false},
		{"truncated ARP", ipv4, mustFrame(gratuitousARP(theirMAC, vip4))[:30], netip.Addr{}, false, false},
		{"unsolicited NA from another host", ipv6, mustFrame(unsolicitedNA(theirMAC, vip6)), vip6, true, true},
		{"our own NA", ipv6, mustFrame(unsolicitedNA(ourMAC, vip6)), vip6, true, false},
		{"a solicitation", ipv6, ns(netip.MustParseAddr("2001:db8:100::10"), vip6, vip6, true), netip.Addr{}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, isNA, ok := announced(tc.fam, tc.frame, ourMAC)
			if ok != tc.isOK || isNA != tc.isNA || ok && addr != tc.want {
				t.Errorf("announced = %v, NA %v, ok %v; want %v, NA %v, ok %v", addr, isNA, ok, tc.want, tc.isNA, tc.isOK)
			}
		})
	}
}
