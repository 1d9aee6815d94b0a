package relay

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/internal/procstat"
)

// TestLabTCPFlood floods a relay process (RLIMIT_NOFILE 1024, at most 150
// TCP connections, 100 from one source) with 1500 held TCP connections and
// 50 slow clients trickling a byte every 200 ms, while a UDP call runs: the
// relay's descriptors stay bounded, its CPU over the flood stays below half
// a core (a loop retrying accept at EMFILE takes a whole one), and the call
// keeps being answered by its server.
func TestLabTCPFlood(t *testing.T) {
	l := lab.ForTest(t)
	site, err := l.BuildSite(lab.SiteOptions{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	const port = 8443
	h, err := l.AddHost("srv1")
	if err != nil {
		t.Fatal(err)
	}
	srv := netip.MustParsePrefix("198.51.100.21/24")
	if err := site.Segment.Connect(h, "eth1", srv); err != nil {
		t.Fatal(err)
	}
	startProc(t, h, "backend", "backend: ready", "BACKEND_NAME=srv1", "BACKEND_ADDR="+netip.AddrPortFrom(srv.Addr(), port).String())
	v4, _ := lab.NodeAddrs(1)
	addr := netip.AddrPortFrom(v4.Addr(), port)
	p := startProc(t, site.Nodes[0], "relay", "relay: ready", "RELAY_ADDR="+addr.String(), "RELAY_BACKENDS=srv1="+srv.Addr().String(),
		"RELAY_NOFILE=1024", "RELAY_MAX_TCP=150", "RELAY_MAX_TCP_SOURCE=100")
	pid := p.Pid()

	call, err := site.Client.ListenPacket("udp4", "198.18.0.10:40000")
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if got := labAsk(t, call, addr); got != "srv1" {
		t.Fatalf("call answered by %q before the flood", got)
	}
	cpu0, start := procCPU(t, pid), time.Now()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 1550 {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := dialIn(ctx, site.Client, &d, addr.String())
		if err != nil {
			continue // the backlog filled: the flood is on
		}
		conns = append(conns, c)
		if i >= 1500 {
			go trickle(ctx, c)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			out := p.Output()
			t.Logf("relay output (%d accept errors):\n%s", strings.Count(out, "accept failed"), out[max(0, len(out)-3000):])
			ss, _ := site.Nodes[0].Run(context.Background(), "ss", "-tan", "-p")
			t.Logf("relay sockets: %d lines, established %d, close-wait %d", strings.Count(ss, "\n"), strings.Count(ss, "ESTAB"), strings.Count(ss, "CLOSE-WAIT"))
		}
	})
	maxFDs := 0
	for range 15 {
		maxFDs = max(maxFDs, procFDs(t, pid))
		if got := labAsk(t, call, addr); got != "srv1" {
			t.Fatalf("during the flood the call was answered by %q, want srv1", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cpu := (procCPU(t, pid) - cpu0).Seconds() / time.Since(start).Seconds()
	t.Logf("flood: %d connections opened, relay at most %d descriptors, %.0f%% of a core", len(conns), maxFDs, 100*cpu)
	// Two descriptors a connection, its sockets: a direction holds a pipe
	// pair only while it moves data (it held one while waiting, six
	// descriptors a connection, until 2026-12-06).
	if want := 2*100 + 100; maxFDs > want {
		t.Errorf("relay held %d descriptors (%v); want at most %d (two per admitted connection and some)", maxFDs, fdKinds(pid), want)
	}
	if cpu > 0.5 {
		t.Errorf("relay used %.0f%% of a core during the flood; want below 50%%", 100*cpu)
	}
	select {
	case <-p.Done():
		t.Fatalf("relay exited:\n%s", p.Output())
	default:
	}
}

func dialIn(ctx context.Context, h *lab.Host, d *net.Dialer, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// trickle is a slow client: one byte every 200 ms until ctx ends.
func trickle(ctx context.Context, c net.Conn) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}
}

// procCPU is the user and system time pid has used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	cpu, err := procstat.CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return cpu
}

func procFDs(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// fdKinds counts pid's descriptors by kind (socket, pipe...).
func fdKinds(pid int) map[string]int {
	out := map[string]int{}
	es, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, e := range es {
		l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name())
		k, _, _ := strings.Cut(l, ":")
		out[k]++
	}
	return out
}
