package relaymode

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestServerAdded: a fourth server joins the backend Service. Flows already
// placed (200 UDP flows, 30 TCP sessions) stay on their servers; new flows
// from the same client addresses and ports, placed by another node's relay
// that has not seen them, follow Maglev over four servers, which moves
// about a quarter of them, to the new server. The flows go to node1's and
// node2's own addresses (relays listen on the node's addresses too), so
// what is tested is the relays' placement, whichever node owns the Relay
// address meanwhile (a move of the owner under load would re-place flows
// sent to that address on the new owner).
func TestServerAdded(t *testing.T) {
	s := up(t)
	cl := s.env.Site.Client
	src := &ports{next: 20000}
	at, other := 0, 1
	dst := netip.AddrPortFrom(nodeAddr(at), 16384)
	flows := openFlows(t, cl, src, dst, 200, servers...)
	sessions := openSessions(t, cl, netip.AddrPortFrom(nodeAddr(at), 8443), 30, servers...)
	t.Logf("before: 200 UDP flows on %v, 30 TCP sessions", count(flows))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.addServer(t, ctx, 4)
	four := append(servers[:len(servers):len(servers)], "srv4")
	s.writeEndpoints(t, map[string]bool{"srv1": true, "srv2": true, "srv3": true, "srv4": true})
	s.waitStatus(t, "calls", int32(len(s.env.Site.Nodes)), 4)
	// Both relays have taken the change once new flows through them reach
	// their owner among four.
	waitNewFlows(t, cl, src, dst, 30*time.Second, four...)
	otherDst := netip.AddrPortFrom(nodeAddr(other), 16384)
	waitNewFlows(t, cl, src, otherDst, 30*time.Second, four...)

	t.Run("placed flows stay", func(t *testing.T) {
		for _, f := range flows {
			if w := f.mustAsk(t, dst, "after"); w.Name != f.server {
				t.Errorf("flow %s was on %s, now reaches %s", f.src, f.server, w.Name)
			}
		}
		for _, ss := range sessions {
			if err := ss.alive(); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("about a quarter of new placements move, to the new server", func(t *testing.T) {
		moved := map[string]int{}
		for _, f := range flows {
			w := f.mustAsk(t, otherDst, "placed anew")
			if want := owner(t, f.src, four...); w.Name != want {
				t.Fatalf("flow %s new at node%d reached %s, want the Maglev owner %s", f.src, other+1, w.Name, want)
			}
			if w.Name != f.server {
				moved[w.Name]++
			}
		}
		n := 0
		for _, m := range moved {
			n += m
		}
		frac := float64(n) / float64(len(flows))
		t.Logf("placed anew at node%d: %d of %d flows (%.2f) changed server: %v", other+1, n, len(flows), frac, moved)
		if frac < 0.1 || frac > 0.4 {
			t.Errorf("%.2f of new placements changed server, want about 1/4 (0.1 to 0.4)", frac)
		}
		if elsewhere := n - moved["srv4"]; elsewhere > len(flows)/20 {
			t.Errorf("%d flows moved between old servers (%v), want nearly all moves to srv4", elsewhere, moved)
		}
	})

	t.Run("new TCP sessions reach their owner among four", func(t *testing.T) {
		got := map[string]int{}
		for _, ss := range openSessions(t, cl, netip.AddrPortFrom(s.calls[0], 8443), 40, four...) {
			got[ss.server]++
			ss.c.Close()
		}
		t.Logf("40 new TCP sessions: %v", got)
		if got["srv4"] == 0 {
			t.Errorf("no new TCP session reached srv4: %v", got)
		}
	})
}
