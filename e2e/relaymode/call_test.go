package relaymode

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
)

// call is a call's media: a UDP stream at 50 packets/s from one client
// socket through a Relay address, with every reply's arrival, the server
// that sent it and the relay node it came through (the source the server
// saw).
type call struct {
	f      *udpFlow
	dst    netip.AddrPort
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	sent    int
	replies []reply
}

type reply struct {
	at     time.Time
	server string
	via    netip.Addr
}

func startCall(t testing.TB, h *lab.Host, dst netip.AddrPort) *call {
	t.Helper()
	c := &call{f: newFlow(t, h, netip.AddrPortFrom(clientLike(dst.Addr()), 0)), dst: dst, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.read()
	go func() {
		defer close(c.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := c.f.pc.WriteTo(fmt.Appendf(nil, "rtp-%d", seq), net.UDPAddrFromAddrPort(dst)); err == nil {
				c.mu.Lock()
				c.sent++
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *call) read() {
	buf := make([]byte, 2048)
	for {
		n, _, err := c.f.pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		w, err := echo.ParseWhoami(string(buf[:n]))
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.replies = append(c.replies, reply{at: time.Now(), server: w.Name, via: w.Client.Addr()})
		c.mu.Unlock()
	}
}

// stop ends the stream (late replies are still counted until the flow's
// socket closes with the test).
func (c *call) stop() {
	c.cancel()
	<-c.done
}

// since returns the replies that arrived after t.
func (c *call) since(t time.Time) []reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []reply
	for _, r := range c.replies {
		if r.at.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// waitReplies waits until n replies arrived after t.
func (c *call) waitReplies(tb testing.TB, t time.Time, n int, within time.Duration) {
	tb.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, within, true, func(context.Context) (bool, error) {
		return len(c.since(t)) >= n, nil
	})
	if err != nil {
		tb.Fatalf("call %s -> %s: %d replies since %s, want %d", c.f.src, c.dst, len(c.since(t)), t.Format(time.StampMilli), n)
	}
}

// gap is the longest time between two replies after t.
func (c *call) gap(t time.Time) time.Duration {
	rs := c.since(t)
	var g time.Duration
	for i := 1; i < len(rs); i++ {
		g = max(g, rs[i].at.Sub(rs[i-1].at))
	}
	return g
}

// killNode kills node i as a crash would: SIGKILL of its speaker and relay,
// and its link to the segment down.
func (s *site) killNode(t testing.TB, i int) {
	t.Helper()
	for _, p := range []*lab.Process{s.env.Speakers[i], s.relays[i]} {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.env.Site.Nodes[i].SetLink("eth1", false); err != nil {
		t.Fatal(err)
	}
}

// callFailover runs a call through the Relay's IPv4 address, kills the
// node that owns the address and waits until the call has gone on for a
// second through another node. It returns the longest gap between replies,
// the old and new owner, and the call.
func (s *site) callFailover(t testing.TB) (time.Duration, int, int, *call) {
	t.Helper()
	addr := s.calls[0]
	c := startCall(t, s.env.Site.Client, netip.AddrPortFrom(addr, 16384))
	start := time.Now()
	c.waitReplies(t, start, 25, 30*time.Second)
	old := s.settledOwner(t, addr)
	s.waitThrough(t, start, old, c)
	killed := time.Now()
	s.killNode(t, old)
	c.waitReplies(t, killed, 50, 60*time.Second)
	c.stop()
	after := c.since(killed)
	next := -1
	for i := range s.env.Site.Nodes {
		if after[len(after)-1].via == nodeAddr(i) {
			next = i
		}
	}
	if next < 0 || next == old {
		t.Fatalf("after node%d was killed the call came through %s, want another node", old+1, after[len(after)-1].via)
	}
	return c.gap(start), old, next, c
}

// checkMaglevOwner checks that every reply of the call came from its
// Maglev owner among servers, and returns that server and the replies.
func (c *call) checkMaglevOwner(t testing.TB) (string, []reply) {
	t.Helper()
	want := owner(t, c.f.src, servers...)
	all := c.since(time.Time{})
	seen := map[string]int{}
	for _, r := range all {
		seen[r.server]++
	}
	if len(seen) != 1 || seen[want] == 0 {
		t.Errorf("call %s: replies by server %v, want all from %s (its Maglev owner)", c.f.src, seen, want)
	}
	return want, all
}

// settledOwner waits until the same node answers ARP for addr three times
// in a row (half a second apart) and returns it.
func (s *site) settledOwner(t testing.TB, addr netip.Addr) int {
	t.Helper()
	last, same := -1, 0
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		o := s.ownerNode(t, addr)
		if o == last {
			same++
		} else {
			last, same = o, 1
		}
		return same >= 3, nil
	})
	if err != nil {
		t.Fatalf("%s never settled on one owner", addr)
	}
	return last
}

// waitThrough waits until the latest reply of every call (after start)
// came through node i, as it does once the router's neighbour entry for
// the call's address names the node that answers ARP.
func (s *site) waitThrough(t testing.TB, start time.Time, i int, calls ...*call) {
	t.Helper()
	for _, c := range calls {
		err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			rs := c.since(start)
			return len(rs) > 0 && rs[len(rs)-1].via == nodeAddr(i), nil
		})
		if err != nil {
			rs := c.since(start)
			neigh, _ := s.env.Site.Router.Run(context.Background(), "ip", "neigh", "show", c.dst.Addr().String())
			t.Fatalf("call %s does not come through the owner node%d (%s) but through %s; router's neighbour entry: %s",
				c.f.src, i+1, nodeAddr(i), rs[len(rs)-1].via, strings.TrimSpace(neigh))
		}
	}
}

// TestCallThroughOwnerFailure: a call (UDP at 50 packets/s) through the
// Relay address while the node that owns the address dies (speaker and
// relay SIGKILLed, link down): the call resumes through the new owner, on
// the same server (every relay picks the Maglev owner of the client's
// address and port; no flow state moves between nodes).
func TestCallThroughOwnerFailure(t *testing.T) {
	s := up(t)
	gap, old, next, c := s.callFailover(t)
	want, all := c.checkMaglevOwner(t)
	t.Logf("call %s on %s: node%d killed, resumed through node%d after a gap of %v (%d sent, %d replies)",
		c.f.src, want, old+1, next+1, gap.Round(time.Millisecond), c.sent, len(all))
}
