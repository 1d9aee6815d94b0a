package relay

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestUDPSocketGroup runs UDP listeners as a group of four SO_REUSEPORT
// sockets: every client keeps its backend, and a burst of datagrams (moved
// in batches on Linux) comes back whole and in order, with replies from the
// address the client sent to.
func TestUDPSocketGroup(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), UDPSockets: 4, Listeners: []Listener{
		{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("0.0.0.0:0")},
		{Name: "udp6", Protocol: UDP, Addr: netip.MustParseAddrPort("[::]:0")},
	}})
	const clients, burst = 24, 20
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), r.Addr("udp").Port()),
		netip.AddrPortFrom(netip.MustParseAddr("::1"), r.Addr("udp6").Port()),
	} {
		for i := range clients {
			c := dialUDP(t, dst)
			name := udpAsk(t, c, "ping")
			for j := range burst {
				if _, err := fmt.Fprintf(c, "%d", j); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 2048)
			for j := 0; j < burst; j++ {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("client %d to %s: reply %d: %v", i, dst, j, err)
				}
				if string(buf[:n]) == name+":ping" {
					j-- // a late reply to a ping udpAsk sent again (a loaded machine)
					continue
				}
				if want := fmt.Sprintf("%s:%d", name, j); string(buf[:n]) != want {
					t.Fatalf("client %d to %s: got %q, want %q", i, dst, buf[:n], want)
				}
			}
		}
	}
	for _, l := range []string{"udp", "udp6"} {
		flows := r.FlowBackends(l)
		if len(flows) != clients {
			t.Errorf("%s: %d flows, want %d", l, len(flows), clients)
		}
		for c, b := range flows {
			if !strings.Contains("abc", b) || len(b) != 1 {
				t.Errorf("%s: flow %s on %q", l, c, b)
			}
		}
	}
}
