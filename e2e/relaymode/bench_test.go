package relaymode

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
)

// Run with -benchtime 1x: every benchmark builds its own site and repeats
// its measurement PIER_BENCH_ROUNDS times (default 5), reporting the median
// and the worst round.

func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("PIER_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 5
}

func report(b *testing.B, what string, d []time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, what+"-p50-ms")
	b.ReportMetric(float64(s[len(s)-1].Microseconds())/1000, what+"-max-ms")
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(time.Millisecond).String())
	}
	b.Logf("%s: %s", what, strings.Join(parts, " "))
}

// BenchmarkServerFailure: how long after srv3 dies (its stand-ins SIGKILLed,
// or its link down) a new flow that Maglev gave srv3 is answered by a live
// server: probes are new UDP flows owned by srv3, one every 10 ms, and the
// figure is the send time of the first one answered from srv1 or srv2.
// "udp-only-kill" is the same against a Relay with a UDP listener only
// (passive check: ICMP port unreachable).
func BenchmarkServerFailure(b *testing.B) {
	for range b.N {
		s := up(b)
		udpOnly := s.createRelay(b, udpOnlyRelay("calls-udp", udpOnlyPort, 0))[0]
		src := &ports{next: 20000}
		cases := []struct {
			name string
			dst  netip.AddrPort
			fail failure
		}{
			{"kill", netip.AddrPortFrom(s.calls[0], 16384), failures[0]},
			{"linkdown", netip.AddrPortFrom(s.calls[0], 16384), failures[1]},
			{"udp-only-kill", netip.AddrPortFrom(udpOnly, udpOnlyPort), failures[0]},
		}
		for _, c := range cases {
			var took []time.Duration
			for range benchRounds() {
				waitNewFlows(b, s.env.Site.Client, src, c.dst, 30*time.Second, servers...)
				// srv3 came back at a tick of the relays' health checks:
				// kill it at a random phase of their interval, not always at
				// the same one.
				time.Sleep(rand.N(time.Second))
				killed := time.Now()
				c.fail.kill(b, s, "srv3")
				took = append(took, firstMoved(b, s.env.Site.Client, src, c.dst, killed))
				c.fail.restore(b, s, "srv3")
			}
			report(b, c.name, took)
		}
	}
}

// firstMoved sends a new flow owned by srv3 every 10 ms and returns the
// send time, after killed, of the first one a live server answered.
func firstMoved(b *testing.B, h *lab.Host, src *ports, dst netip.AddrPort, killed time.Time) time.Duration {
	b.Helper()
	cv4, _ := clientAddrs()
	deadline := time.After(30 * time.Second)
	answered := make(chan time.Duration, 1024)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var first time.Duration
	var settle <-chan time.Time
	for {
		select {
		case <-deadline:
			b.Fatalf("no new flow of srv3 reached a live server within 30 s")
		case sent := <-answered:
			if first == 0 || sent < first {
				first = sent
			}
			if settle == nil { // let probes sent earlier finish
				settle = time.After(500 * time.Millisecond)
			}
			continue
		case <-settle:
			return first
		case <-tick.C:
		}
		p := src.take()
		for owner(b, netip.AddrPortFrom(cv4, p), servers...) != "srv3" {
			p = src.take()
		}
		f := newFlow(b, h, netip.AddrPortFrom(cv4, p))
		sent := time.Since(killed)
		wg.Go(func() {
			defer f.pc.Close()
			if w, err := f.ask(dst, "probe", 1); err == nil && w.Name != "srv3" {
				answered <- sent
			}
		})
	}
}

// BenchmarkCallFailover: the longest gap in a call (UDP at 50 packets/s
// through the Relay address) when the node that owns the address dies
// (speaker and relay SIGKILLed, link down); the node is brought back
// between rounds.
func BenchmarkCallFailover(b *testing.B) {
	for range b.N {
		s := up(b)
		var gaps []time.Duration
		for range benchRounds() {
			gap, old, next, c := s.callFailover(b)
			if srvs := servedBy(c); len(srvs) != 1 {
				b.Fatalf("call %s reached %v, want one server", c.f.src, srvs)
			}
			b.Logf("node%d killed: gap %v, resumed through node%d", old+1, gap.Round(time.Millisecond), next+1)
			gaps = append(gaps, gap)
			s.reviveNode(b, old)
		}
		report(b, "gap", gaps)
	}
}

func servedBy(c *call) map[string]int {
	out := map[string]int{}
	for _, r := range c.since(time.Time{}) {
		out[r.server]++
	}
	return out
}

// reviveNode brings a killed node back: link up, its routes, speaker and
// relay, and waits until its speaker has rejoined and the Relay's address
// has one settled owner.
func (s *site) reviveNode(b *testing.B, i int) {
	b.Helper()
	n := s.env.Site.Nodes[i]
	<-s.env.Speakers[i].Done()
	<-s.relays[i].Done()
	if err := n.SetLink("eth1", true); err != nil {
		b.Fatal(err)
	}
	// Link down took the IPv6 address and the routes through the segment
	// with it.
	_, v6 := lab.NodeAddrs(i + 1)
	if err := n.AddAddr("eth1", v6); err != nil && !strings.Contains(err.Error(), "exists") {
		b.Fatal(err)
	}
	for _, r := range []struct{ dst, via string }{
		{lab.ClientNets.String(), "198.51.100.1"}, {lab.ClientV6.String(), "2001:db8:100::1"},
	} {
		if err := n.AddRoute(netip.MustParsePrefix(r.dst), netip.MustParseAddr(r.via)); err != nil && !strings.Contains(err.Error(), "exists") {
			b.Fatal(err)
		}
	}
	sp, err := s.env.StartSpeaker(i)
	if err != nil {
		b.Fatal(err)
	}
	s.startRelay(b, i)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for j, other := range s.env.Site.Nodes {
		if j != i {
			if err := sp.WaitOutput(ctx, `"peer":"`+other.Name+`"`); err != nil {
				b.Fatalf("node%d's speaker did not rejoin %s: %v", i+1, other.Name, err)
			}
		}
	}
	s.waitLeases(b, "calls", len(s.env.Site.Nodes))
	s.settledOwner(b, s.calls[0])
}
