package relaymode

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/relay"
)

// TestKernelDataPath switches Relay "calls" (default listeners: 8443/TCP,
// 16384/UDP) to spec.dataPath Kernel: new UDP flows are translated by the
// nodes' nftables DNAT over the relay's Maglev table and carried by
// conntrack, the relay process never sees their datagrams. The lab's nodes
// do not forward by default; the kernel path needs it, so the test turns
// IPv4 and IPv6 forwarding on in the node namespaces first.
func TestKernelDataPath(t *testing.T) {
	s := up(t)
	s.useKernelPath(t)
	cl := s.env.Site.Client
	src := &ports{next: 30000}
	vip := netip.AddrPortFrom(s.calls[0], 16384)

	// (1) Flows through the Relay address reach their Maglev owner, through
	// two nodes' own addresses the same client port reaches the same
	// server, and it is the kernel that carried them: conntrack entries
	// with the relay's mark, translated to that server, the kernel path's
	// packet counters up and the relays' own UDP counters still.
	t.Run("placement and agreement in the kernel", func(t *testing.T) {
		userBefore := s.userspaceUDPIn(t)
		kernelBefore := s.kernelIn(t)
		flows := openFlows(t, cl, src, vip, 100, servers...)
		for _, f := range flows {
			for _, n := range []int{0, 1} {
				if w := f.mustAsk(t, netip.AddrPortFrom(nodeAddr(n), 16384), "agree?"); w.Name != f.server {
					t.Fatalf("client %s: node%d placed it on %s, the Relay address on %s (the Maglev owner)", f.src, n+1, w.Name, f.server)
				}
			}
		}
		t.Logf("100 flows through %s and through node1 and node2: %v, every node agrees", vip, count(flows))
		owner := s.ownerNode(t, vip.Addr())
		for _, c := range []struct {
			node int
			dst  netip.AddrPort
		}{{owner, vip}, {0, netip.AddrPortFrom(nodeAddr(0), 16384)}, {1, netip.AddrPortFrom(nodeAddr(1), 16384)}} {
			ct := s.kernelFlows(t, c.node, c.dst)
			for _, f := range flows {
				if got, want := ct[f.src], serverAddr(t, f.server); got != want {
					t.Errorf("node%d conntrack: flow %s -> %s translated to %v, want %s (%s)", c.node+1, f.src, c.dst, got, want, f.server)
				}
			}
			t.Logf("node%d: %d kernel flows (ct mark %#x) to %s in conntrack", c.node+1, len(ct), relay.DefaultKernelCtMark, c.dst)
		}
		kernel := s.kernelIn(t) - kernelBefore
		if user := s.userspaceUDPIn(t) - userBefore; user != 0 {
			t.Errorf("the relays read %v UDP datagrams of flows the kernel placed, want 0", user)
		}
		if kernel < 3*float64(len(flows)) {
			t.Errorf("pier_relay_kernel_packets_total in grew by %v over the nodes, want at least %d", kernel, 3*len(flows))
		}
		t.Logf("pier_relay_kernel_packets_total{direction=\"in\"} +%v, pier_relay_packets_total{proto=\"udp\",direction=\"in\"} +0", kernel)
	})

	// The lab's servers have IPv4 addresses only: the kernel cannot NAT an
	// IPv6 flow to them, so the relay carries it in user space.
	t.Run("IPv6 flows stay in user space", func(t *testing.T) {
		if len(s.calls) < 2 {
			t.Fatalf("relay calls got %v, want an IPv6 address too", s.calls)
		}
		before := s.userspaceUDPIn(t)
		_, cv6 := clientAddrs()
		f := newFlow(t, cl, netip.AddrPortFrom(cv6, 0))
		w := f.mustAsk(t, netip.AddrPortFrom(s.calls[1], 16384), "v6")
		if want := owner(t, f.src, servers...); w.Name != want {
			t.Errorf("udp %s from %s: reached %s, want the Maglev owner %s", s.calls[1], f.src, w.Name, want)
		}
		if d := s.userspaceUDPIn(t) - before; d < 1 {
			t.Errorf("an IPv6 flow to IPv4 servers: relays' UDP in +%v, want it relayed in user space", d)
		}
	})

	// A changed Relay spec replaces each node's relay instance (the old one
	// drains): the new instance writes its table before the old one's goes,
	// so a call the kernel carries never notices.
	t.Run("relay replaced on a spec change keeps flows", func(t *testing.T) {
		const x = 0
		dst := netip.AddrPortFrom(nodeAddr(x), 16384)
		c := startCall(t, cl, dst)
		start := time.Now()
		c.waitReplies(t, start, 25, 10*time.Second)
		server := c.since(start)[0].server
		series := `pier_relay_packets_total{direction="in",proto="udp",relay="voice/calls"}`
		readBefore := s.relayMetric(t, x, series)
		changed := time.Now()
		r := callsRelay()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		must(t, s.env.Pier.Get(ctx, client.ObjectKeyFromObject(r), r))
		r.Spec.Timeouts.UDPIdle = &metav1.Duration{Duration: 90 * time.Second}
		must(t, s.env.Pier.Update(ctx, r))
		time.Sleep(2 * time.Second) // the agents replace their relays
		c.waitReplies(t, time.Now(), 25, 10*time.Second)
		c.stop()
		gap, _ := longestGap(c.since(changed))
		read := s.relayMetric(t, x, series) - readBefore
		for _, rp := range c.since(start) {
			if rp.server != server {
				t.Fatalf("call %s moved from %s to %s when the relay was replaced", c.f.src, server, rp.server)
			}
		}
		t.Logf("relay replaced: call %s on %s, longest gap %v, %v of its datagrams read by a relay", c.f.src, server, gap.Round(time.Millisecond), read)
		if gap > 300*time.Millisecond || read != 0 {
			t.Errorf("call through node%d across the relay replacement: longest gap %v, %v datagrams through the relay", x+1, gap, read)
		}
	})

	// (4) TCP stays in the relay process, beside the kernel's UDP.
	t.Run("TCP through the same Relay", func(t *testing.T) {
		w, local := mustTCP(t, cl, netip.AddrPortFrom(s.calls[0], 8443))
		if want := owner(t, local, servers...); w.Name != want {
			t.Errorf("tcp %s from %s: reached %s, want the Maglev owner %s", s.calls[0], local, w.Name, want)
		}
		t.Logf("tcp from %s -> %s (seen from %s)", local, w.Name, w.Client)
	})

	// (3) SIGKILL of pier-relay on a node carrying a call: the call's NAT
	// lives in conntrack, so it goes on while no relay runs (a relay in
	// user space would leave it silent), and across the restart it stays
	// on its server.
	t.Run("relay restart keeps flows", func(t *testing.T) {
		const x = 1
		dst := netip.AddrPortFrom(nodeAddr(x), 16384)
		c := startCall(t, cl, dst)
		start := time.Now()
		c.waitReplies(t, start, 25, 10*time.Second)
		server := c.since(start)[0].server
		if want := owner(t, c.f.src, servers...); server != want {
			t.Fatalf("call %s -> %s on %s, want the Maglev owner %s", c.f.src, dst, server, want)
		}
		killed := time.Now()
		must(t, s.relays[x].Signal(syscall.SIGKILL))
		<-s.relays[x].Done()
		time.Sleep(time.Second)
		deadGap, _ := longestGap(c.since(start))
		deadReplies := len(c.since(killed))
		restarted := time.Now()
		s.startRelay(t, x)
		s.waitKernelMetrics(t, x)
		back := time.Since(restarted)
		c.waitReplies(t, time.Now(), 50, 10*time.Second)
		c.stop()
		time.Sleep(200 * time.Millisecond) // the last replies
		for _, r := range c.since(start) {
			if r.server != server {
				t.Fatalf("call %s moved from %s to %s across the relay restart", c.f.src, server, r.server)
			}
		}
		c.mu.Lock()
		sent, got := c.sent, len(c.replies)
		c.mu.Unlock()
		gap, gapEnd := longestGap(c.since(restarted))
		read := s.relayMetric(t, x, `pier_relay_packets_total{direction="in",proto="udp",relay="voice/calls"}`)
		t.Logf("node%d relay SIGKILLed: call %s on %s answered %d times in the 1s without a relay (longest gap %v)",
			x+1, c.f.src, server, deadReplies, deadGap.Round(time.Millisecond))
		t.Logf("relay restarted, its table in within %v: longest gap %v (ending %v after the start), the restarted relay read %v of the call's datagrams; %d sent, %d replies in all",
			back.Round(time.Millisecond), gap.Round(time.Millisecond), gapEnd.Sub(restarted).Round(time.Millisecond), read, sent, got)
		// Without conntrack carrying it the call gets no reply at all; the
		// bound leaves room for a loaded machine (the figure is logged).
		if deadReplies < 25 || deadGap > 500*time.Millisecond {
			t.Errorf("with node%d's relay killed the call got %d replies in 1s (longest gap %v), want conntrack to carry it (50 at 50/s)", x+1, deadReplies, deadGap)
		}
		// The restarted relay writes its table before it removes the dead
		// one's: conntrack never goes off, so the call never notices.
		if gap > 300*time.Millisecond || sent-got > 2 || read != 0 {
			t.Errorf("call through node%d across the relay restart: longest gap %v, %d of %d datagrams unanswered, %v read by the relay",
				x+1, gap, sent-got, sent, read)
		}
		if got := s.kernelFlows(t, x, dst)[c.f.src]; got != serverAddr(t, server) {
			t.Errorf("node%d conntrack after the restart: call %s translated to %v, want %s", x+1, c.f.src, got, serverAddr(t, server))
		}
		waitNewFlows(t, cl, src, dst, 10*time.Second, servers...)
	})

	// (2) SIGKILL of srv3's stand-ins: the active check (the TCP listener's
	// port) marks it down and its kernel flows are forgotten, so a call on
	// it is placed again on its owner among the live servers; a call on a
	// live server keeps it.
	t.Run("server failure", func(t *testing.T) {
		live := []string{"srv1", "srv2"}
		flows := openFlows(t, cl, src, vip, 60, servers...)
		if count(flows)["srv3"] == 0 {
			t.Fatalf("no flow on srv3 among %v", count(flows))
		}
		onDead, onLive := s.callsOn(t, vip, "srv3"), s.callsOn(t, vip, "srv1")
		killed := time.Now()
		killEchoes(t, s, "srv3")
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s.startEchoes(t, ctx, "srv3")
			took := waitNewFlows(t, cl, src, vip, 30*time.Second, servers...)
			t.Logf("srv3 back: new flows reach it again %v after", took.Round(time.Millisecond))
		}()
		want := owner(t, onDead.f.src, live...)
		var moved time.Duration
		err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			for _, r := range onDead.since(killed) {
				if r.server != "srv3" {
					moved = r.at.Sub(killed)
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("call %s on srv3 got no answer from a live server within 5s of the kill", onDead.f.src)
		}
		onDead.waitReplies(t, killed.Add(moved), 10, 5*time.Second)
		onDead.stop()
		onLive.stop()
		for _, r := range onDead.since(killed.Add(moved)) {
			if r.server != want {
				t.Errorf("call %s on srv3 moved to %s, want its owner among the live servers %s", onDead.f.src, r.server, want)
				break
			}
		}
		for _, r := range onLive.since(killed) {
			if r.server != "srv1" {
				t.Errorf("call %s on live srv1 moved to %s", onLive.f.src, r.server)
				break
			}
		}
		liveGap := onLive.gap(killed)
		t.Logf("srv3 SIGKILLed: its call answered from %s %v after the kill; the call on srv1 kept it (longest gap %v)",
			want, moved.Round(time.Millisecond), liveGap.Round(time.Millisecond))
		// The health check finds the server dead within about a second;
		// the bound leaves room for a loaded machine (the figure is logged,
		// BenchmarkServerFailure measures it).
		if moved > 3*time.Second {
			t.Errorf("the call on srv3 reached a live server %v after the kill, want within 3s", moved)
		}
		checkSurvivors(t, flows, nil, vip, live)
	})
}

// useKernelPath turns forwarding on in the nodes (off in a new network
// namespace, needed by the kernel path) and switches Relay "calls" to
// dataPath Kernel, then waits until every node's relay runs the kernel path
// and new flows reach their owners.
func (s *site) useKernelPath(t *testing.T) {
	t.Helper()
	for _, n := range s.env.Site.Nodes {
		var v4 []byte
		must(t, n.Do(func() (err error) { v4, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); return err }))
		must(t, n.EnableForwarding())
		t.Logf("%s: net.ipv4.ip_forward was %s, forwarding (IPv4, IPv6) turned on", n.Name, strings.TrimSpace(string(v4)))
	}
	r := callsRelay()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, s.env.Pier.Get(ctx, client.ObjectKeyFromObject(r), r))
	r.Spec.DataPath = v1alpha1.DataPathKernel
	must(t, s.env.Pier.Update(ctx, r))
	for i := range s.env.Site.Nodes {
		s.waitKernelMetrics(t, i)
	}
	s.waitLeases(t, "calls", len(s.env.Site.Nodes))
	waitNewFlows(t, s.env.Site.Client, &ports{next: 40000}, netip.AddrPortFrom(s.calls[0], 16384), 30*time.Second, servers...)
}

// waitKernelMetrics waits until node i's relay reports the kernel path's
// counters (it runs with its table written).
func (s *site) waitKernelMetrics(t testing.TB, i int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(scrape(t, s.env.Site.Nodes[i], fmt.Sprintf("127.0.0.1:%d", kubelab.RelayMetricsPort)), "pier_relay_kernel_flows_total{"), nil
	})
	if err != nil {
		t.Fatalf("node%d's relay never reported pier_relay_kernel_* metrics", i+1)
	}
}

// longestGap is the longest time between two replies, and when it ended.
func longestGap(rs []reply) (time.Duration, time.Time) {
	var g time.Duration
	var end time.Time
	for i := 1; i < len(rs); i++ {
		if d := rs[i].at.Sub(rs[i-1].at); d > g {
			g, end = d, rs[i].at
		}
	}
	return g, end
}

// callsOn starts calls through dst until one lands on server, and returns
// it (the others are stopped).
func (s *site) callsOn(t testing.TB, dst netip.AddrPort, server string) *call {
	t.Helper()
	for range 30 {
		c := startCall(t, s.env.Site.Client, dst)
		start := time.Now()
		c.waitReplies(t, start, 5, 10*time.Second)
		if c.since(start)[0].server == server {
			return c
		}
		c.stop()
	}
	t.Fatalf("30 calls through %s, none on %s", dst, server)
	return nil
}

// kernelFlows lists node i's conntrack entries of the kernel path (ct
// mark relay.DefaultKernelCtMark) of UDP to dst: client to the backend
// address and port the flow was translated to.
func (s *site) kernelFlows(t testing.TB, i int, dst netip.AddrPort) map[netip.AddrPort]netip.AddrPort {
	t.Helper()
	var flows []*netlink.ConntrackFlow
	must(t, s.env.Site.Nodes[i].Do(func() (err error) {
		flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		return err
	}))
	out := map[netip.AddrPort]netip.AddrPort{}
	for _, c := range flows {
		if c.Mark&relay.DefaultKernelCtMark == 0 || c.Forward.Protocol != unix.IPPROTO_UDP ||
			ipPort(c.Forward.DstIP, c.Forward.DstPort) != dst {
			continue
		}
		out[ipPort(c.Forward.SrcIP, c.Forward.SrcPort)] = ipPort(c.Reverse.SrcIP, c.Reverse.SrcPort)
	}
	return out
}

func ipPort(ip []byte, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}

// serverAddr is the UDP address of server srv<n>'s plain stand-in.
func serverAddr(t testing.TB, name string) netip.AddrPort {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(name, "srv"))
	if err != nil {
		t.Fatalf("server %q: %v", name, err)
	}
	return netip.AddrPortFrom(kubelab.BackendAddr(n).Addr(), backendUDP)
}

// userspaceUDPIn is the UDP datagrams the nodes' relays read for Relay
// calls (pier_relay_packets_total, direction in).
func (s *site) userspaceUDPIn(t testing.TB) float64 {
	t.Helper()
	return s.sumMetric(t, "pier_relay_packets_total", `direction="in"`, `proto="udp"`, `relay="voice/calls"`)
}

// kernelIn is the datagrams the nodes' kernel paths carried from clients.
func (s *site) kernelIn(t testing.TB) float64 {
	t.Helper()
	return s.sumMetric(t, "pier_relay_kernel_packets_total", `direction="in"`)
}

// sumMetric adds up, over every node's relay, the series of a metric
// whose labels include all of labels.
func (s *site) sumMetric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, n := range s.env.Site.Nodes {
		for _, line := range strings.Split(scrape(t, n, fmt.Sprintf("127.0.0.1:%d", kubelab.RelayMetricsPort)), "\n") {
			series, value, ok := strings.Cut(line, " ")
			if !ok || !strings.HasPrefix(series, name+"{") || !containsAll(series, labels) {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				t.Fatalf("%s: metric %q: %v", n.Name, line, err)
			}
			sum += v
		}
	}
	return sum
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
