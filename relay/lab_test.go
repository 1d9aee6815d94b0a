package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
)

// TestLabMaglevAgreement runs two relays on two nodes of a lab site and three
// backends on other hosts of the segment: a client behind the router always
// lands on the same backend, and both relays pick the same backend for the
// same client address and port.
func TestLabMaglevAgreement(t *testing.T) {
	l := lab.ForTest(t)
	site, err := l.BuildSite(lab.SiteOptions{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	const port = 16384
	var bs []string
	for i, name := range []string{"srv1", "srv2", "srv3"} {
		h, err := l.AddHost(name)
		if err != nil {
			t.Fatal(err)
		}
		a := netip.MustParsePrefix(fmt.Sprintf("198.51.100.%d/24", 21+i))
		if err := site.Segment.Connect(h, "eth1", a); err != nil {
			t.Fatal(err)
		}
		startProc(t, h, "backend", "backend: ready", "BACKEND_NAME="+name, fmt.Sprintf("BACKEND_ADDR=%s:%d", a.Addr(), port))
		bs = append(bs, name+"="+a.Addr().String())
	}
	var relays []netip.AddrPort
	for i, node := range site.Nodes {
		v4, _ := lab.NodeAddrs(i + 1)
		a := netip.AddrPortFrom(v4.Addr(), port)
		startProc(t, node, "relay", "relay: ready", "RELAY_ADDR="+a.String(), "RELAY_BACKENDS="+strings.Join(bs, ","))
		relays = append(relays, a)
	}
	seen := map[string]bool{}
	for i := range 12 {
		src := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.10"), uint16(40000+i))
		pc, err := site.Client.ListenPacket("udp4", src.String())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range relays {
			for range 3 {
				got = append(got, labAsk(t, pc, r))
			}
		}
		pc.Close()
		for _, g := range got {
			if g != got[0] {
				t.Fatalf("client %s: backends %v, want one", src, got)
			}
		}
		seen[got[0]] = true
	}
	if len(seen) < 2 {
		t.Errorf("12 client ports all landed on %v: hashing does not spread", seen)
	}
}

// labAsk sends one datagram to relay and returns the answering backend; the
// reply must come from the relay's address.
func labAsk(t *testing.T, pc net.PacketConn, relay netip.AddrPort) string {
	t.Helper()
	buf := make([]byte, 1500)
	for range 20 {
		if _, err := pc.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(relay)); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		if f := from.(*net.UDPAddr).AddrPort(); netip.AddrPortFrom(f.Addr().Unmap(), f.Port()) != relay {
			t.Fatalf("reply from %s, want %s", from, relay)
		}
		name, payload, _ := strings.Cut(string(buf[:n]), ":")
		if payload != "hi" {
			t.Fatalf("reply %q", buf[:n])
		}
		return name
	}
	t.Fatalf("no reply from relay %s", relay)
	return ""
}
