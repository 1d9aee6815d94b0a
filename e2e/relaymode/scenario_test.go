package relaymode

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/internal/procstat"
)

// Helpers of the scenarios that build on TestRelay's site: flows kept open
// across a change, TCP sessions, the owner node of an address, metrics and
// memory of a relay process.

// placed is a UDP flow with the server its first datagram reached.
type placed struct {
	*udpFlow
	server string
}

// openFlows opens n new flows (fresh client ports) to dst, one datagram
// each, and checks every one reached its Maglev owner among servers.
func openFlows(t testing.TB, h *lab.Host, src *ports, dst netip.AddrPort, n int, servers ...string) []placed {
	t.Helper()
	cv4, _ := clientAddrs()
	var out []placed
	for range n {
		f := newFlow(t, h, netip.AddrPortFrom(cv4, src.take()))
		w := f.mustAsk(t, dst, "open")
		if want := owner(t, f.src, servers...); w.Name != want {
			t.Fatalf("new flow %s -> %s reached %s, want the Maglev owner %s", f.src, dst, w.Name, want)
		}
		out = append(out, placed{f, w.Name})
	}
	return out
}

// count tallies the flows by server.
func count(fs []placed) map[string]int {
	out := map[string]int{}
	for _, f := range fs {
		out[f.server]++
	}
	return out
}

// session is a TCP connection through a relay to a server, kept open.
type session struct {
	c      net.Conn
	r      *bufio.Reader
	local  netip.AddrPort
	server string
}

// openSessions opens n TCP connections to dst, each reaching its Maglev
// owner among servers.
func openSessions(t testing.TB, h *lab.Host, dst netip.AddrPort, n int, servers ...string) []*session {
	t.Helper()
	var out []*session
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := h.Dial(ctx, "tcp", dst.String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s := &session{c: c, r: bufio.NewReader(c)}
		la := c.LocalAddr().(*net.TCPAddr).AddrPort()
		s.local = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("tcp session %s -> %s: %v", s.local, dst, err)
		}
		w, err := echo.ParseWhoami(line)
		if err != nil {
			t.Fatal(err)
		}
		if want := owner(t, s.local, servers...); w.Name != want {
			t.Fatalf("tcp session %s -> %s reached %s, want the Maglev owner %s", s.local, dst, w.Name, want)
		}
		s.server = w.Name
		out = append(out, s)
	}
	return out
}

// alive sends a message on the session and waits for its echo.
func (s *session) alive() error {
	msg := fmt.Sprintf("still there %s?", s.local)
	_ = s.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s.c, msg); err != nil {
		return fmt.Errorf("session %s on %s: %w", s.local, s.server, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s.r, got); err != nil || string(got) != msg {
		return fmt.Errorf("session %s on %s: echoed %q: %v", s.local, s.server, got, err)
	}
	return nil
}

// waitNewFlows waits up to within until 30 new flows to dst in a row each
// reach their Maglev owner among servers, and returns how long that took
// (the last of the 30 answered).
func waitNewFlows(t testing.TB, h *lab.Host, src *ports, dst netip.AddrPort, within time.Duration, servers ...string) time.Duration {
	t.Helper()
	cv4, _ := clientAddrs()
	start := time.Now()
	var last string
	for ok := 0; ok < 30; {
		if time.Since(start) > within {
			t.Fatalf("new flows to %s did not all reach their owner among %v within %s: %s", dst, servers, within, last)
		}
		f := newFlow(t, h, netip.AddrPortFrom(cv4, src.take()))
		w, err := f.ask(dst, "new flow", 1)
		f.pc.Close()
		switch want := owner(t, f.src, servers...); {
		case err != nil:
			ok, last = 0, err.Error()
		case w.Name != want:
			ok, last = 0, fmt.Sprintf("%s reached %s, want %s", f.src, w.Name, want)
		default:
			ok++
		}
	}
	return time.Since(start)
}

// createRelay creates r and waits for its address (LoadBalancer exposure)
// and for every node's relay to serve it.
func (s *site) createRelay(t testing.TB, r *v1alpha1.Relay) []netip.Addr {
	t.Helper()
	if err := s.env.Pier.Create(context.Background(), r); err != nil {
		t.Fatalf("create relay %s: %v", r.Name, err)
	}
	addrs := s.relayAddrs(t, r)
	s.waitLeases(t, r.Name, len(s.env.Site.Nodes))
	return addrs
}

// ownerNode is the index of the node that answers ARP for addr.
func (s *site) ownerNode(t testing.TB, addr netip.Addr) int {
	t.Helper()
	node, _, err := s.env.WhoAnswers(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.env.Site.Nodes, func(h *lab.Host) bool { return h.Name == node })
	if i < 0 {
		t.Fatalf("%s is owned by %s, no node", addr, node)
	}
	return i
}

// relayMetric reads one series of node i's relay metrics (0 when absent).
func (s *site) relayMetric(t testing.TB, i int, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, s.env.Site.Nodes[i], fmt.Sprintf("127.0.0.1:%d", 7474)), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// vmRSS is a process's resident set size in bytes (/proc/<pid>/status).
func vmRSS(t testing.TB, pid int) int64 {
	t.Helper()
	rss, err := procstat.RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// mib formats bytes as MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
