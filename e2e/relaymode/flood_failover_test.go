package relaymode

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
)

// failoverMaxFlows is the flood Relay's flow limit in
// TestFailoverDuringFlood: small, so that the flood keeps every node's
// table full.
const failoverMaxFlows = 100

// flooder sends the flood in rounds: one datagram from each of a block of
// fresh client ports to each target. Ports go round below the ephemeral
// range (where the calls' ports are), each used once per turn, so that a
// port comes back only long after its flow left the table (100 flows) and
// its datagram is a new flow again, never a second datagram of a flow.
type flooder struct {
	h    *lab.Host
	next int
	sent int
	took time.Duration
}

const (
	floodFirstPort = 2000
	floodLastPort  = 30000
	floodBlock     = 300
)

// round sends a block of datagrams to each target.
func (f *flooder) round(t testing.TB, targets []netip.AddrPort) {
	t.Helper()
	start := time.Now()
	for _, dst := range targets {
		if f.next < floodFirstPort || f.next+floodBlock > floodLastPort {
			f.next = floodFirstPort
		}
		flood(t, f.h, dst, f.next, floodBlock)
		f.next += floodBlock
		f.sent += floodBlock
	}
	f.took += time.Since(start)
}

func (f *flooder) rate() float64 { return float64(f.sent) / f.took.Seconds() }

// TestFailoverDuringFlood: five calls (UDP at 50 packets/s each, each on
// its Maglev owner) run through a Relay address limited to 100 flows
// while a flood of one-datagram flows from other client ports keeps the
// flow table of every node full (the flood goes to the address, and to
// each node's own address, where the same wildcard listener and table
// take it). The node owning the address dies while the flood goes on: the
// calls become new flows on the new owner, whose table is full of the
// flood's flows. Every call must resume through the new owner on its own
// server and be answered to the end, and the new owner must have evicted
// flood flows (its table was full). Gaps and counts are logged.
func TestFailoverDuringFlood(t *testing.T) {
	s := up(t)
	cl := s.env.Site.Client
	r := floodRelay()
	r.Spec.Limits.MaxFlows = failoverMaxFlows
	addr := s.createRelay(t, r)[0]
	s.waitRelayEndpoints(t, r.Name, len(s.env.Site.Nodes))
	dst := netip.AddrPortFrom(addr, floodPort)

	var calls []*call
	start := time.Now()
	for range 5 {
		c := startCall(t, cl, dst)
		calls = append(calls, c)
	}
	for _, c := range calls {
		c.waitReplies(t, start, 25, 30*time.Second)
	}

	// The address's owner once it holds still (the Relay's Service has
	// externalTrafficPolicy Local: its owner may move while the speakers
	// learn each node's relay endpoint), as ARP says and as the calls see
	// it (the source the servers saw).
	old := s.settledOwner(t, addr)
	s.waitThrough(t, start, old, calls...)

	fl := &flooder{h: cl}
	targets := func(dead int) []netip.AddrPort {
		out := []netip.AddrPort{dst}
		for i := range s.env.Site.Nodes {
			if i != dead {
				out = append(out, netip.AddrPortFrom(nodeAddr(i), floodPort))
			}
		}
		return out
	}

	// Flood until every node's table is full.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		fl.round(t, targets(-1))
		counts := s.floodCounts(t)
		if !slices.ContainsFunc(counts, func(c floodCount) bool { return c.active < failoverMaxFlows }) {
			for i, c := range counts {
				t.Logf("before the failover node%d: %v active flows (limit %d), %v evicted, %v table-full drops",
					i+1, c.active, failoverMaxFlows, c.evicted, c.drops)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d flood datagrams the tables are not all full: %+v", fl.sent, counts)
		}
	}

	if o := s.ownerNode(t, addr); o != old {
		t.Logf("the flood moved %s from node%d to node%d", addr, old+1, o+1)
		old = s.settledOwner(t, addr)
		fl.round(t, targets(-1))
		s.waitThrough(t, start, old, calls...)
	}
	before := map[int]floodCount{}
	for i := range s.env.Site.Nodes {
		if i != old {
			before[i] = s.floodCount(t, i)
		}
	}

	killed := time.Now()
	s.killNode(t, old)
	// The flood goes on until every call has had 100 replies (2 s) through
	// another node, and for at least 5 s.
	resumed := func(c *call) int {
		n := 0
		for _, r := range c.since(killed) {
			if r.via != nodeAddr(old) {
				n++
			}
		}
		return n
	}
	deadline = time.Now().Add(2 * time.Minute)
	for time.Since(killed) < 5*time.Second || slices.ContainsFunc(calls, func(c *call) bool { return resumed(c) < 100 }) {
		if time.Now().After(deadline) {
			for _, c := range calls {
				t.Errorf("call %s: %d replies through another node since node%d was killed %v ago",
					c.f.src, resumed(c), old+1, time.Since(killed).Round(time.Millisecond))
			}
			for i, b := range before {
				d := s.floodCount(t, i).minus(b)
				t.Logf("node%d since the kill: %v new flows, %v evicted, %v table-full drops", i+1, d.active+d.evicted, d.evicted, d.drops)
			}
			t.Fatalf("the calls did not all resume during the flood (%d datagrams at %.0f/s)", fl.sent, fl.rate())
		}
		fl.round(t, targets(old))
	}
	next := s.ownerNode(t, addr)
	if next == old {
		t.Fatalf("node%d was killed and still answers ARP for %s", old+1, addr)
	}
	after := s.floodCount(t, next)
	floodEnd := time.Now()

	// Answered to the end: each call goes on after the flood, then stops.
	for _, c := range calls {
		c.waitReplies(t, floodEnd, 25, 30*time.Second)
		c.stop()
	}

	for _, c := range calls {
		want, all := c.checkMaglevOwner(t)
		if via := all[len(all)-1].via; via != nodeAddr(next) {
			t.Errorf("call %s: last reply through %s, want the new owner node%d (%s)", c.f.src, via, next+1, nodeAddr(next))
		}
		gap, _ := longestGap(c.since(start))
		t.Logf("call %s on %s: longest gap %v (across the failover), %d sent, %d replies, %d through node%d after the kill",
			c.f.src, want, gap.Round(time.Millisecond), c.sent, len(all), resumed(c), next+1)
	}
	d := after.minus(before[next])
	t.Logf("flood: %d datagrams at %.0f/s (%d client ports per round to %d targets); node%d killed, node%d owns %s; during the failover node%d took %v new flows, evicted %v, dropped %v (table full), the kernel dropped %v; %v active flows (limit %d)",
		fl.sent, fl.rate(), floodBlock, len(targets(old)), old+1, next+1, addr, next+1,
		d.active+d.evicted, d.evicted, d.drops, d.kernel, after.active, failoverMaxFlows)
	if d.evicted == 0 {
		t.Errorf("node%d evicted no flow after the failover: its table was not full", next+1)
	}
}
