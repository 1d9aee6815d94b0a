package kernelpath

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pier-lb/pier/e2e/lab"
)

// The lab: client --- relay (the path) --- backend host with one UDP echo
// server per address, each answering with its name.
var (
	clientV4  = netip.MustParsePrefix("198.18.20.2/24")
	clientV6  = netip.MustParsePrefix("2001:db8:20::2/64")
	frontV4   = netip.MustParsePrefix("198.18.20.1/24")
	frontV6   = netip.MustParsePrefix("2001:db8:20::1/64")
	backV4    = netip.MustParsePrefix("198.18.21.1/24")
	backV6    = netip.MustParsePrefix("2001:db8:21::1/64")
	listen    = uint16(16384)
	servePort = uint16(7000)
)

type testLab struct {
	client, relay, backend *lab.Host
	servers4, servers6     []netip.AddrPort // index i answers "b<i>"
}

func newLab(t testing.TB) *testLab {
	t.Helper()
	l := lab.ForTest(t)
	tl := &testLab{}
	var err error
	for _, h := range []struct {
		p    **lab.Host
		name string
	}{{&tl.client, "client"}, {&tl.relay, "relay"}, {&tl.backend, "backend"}} {
		if *h.p, err = l.AddHost(h.name); err != nil {
			t.Fatal(err)
		}
	}
	steps := []func() error{
		func() error { return l.ConnectHosts(tl.client, "eth0", tl.relay, "eth0") },
		func() error { return l.ConnectHosts(tl.relay, "eth1", tl.backend, "eth0") },
		func() error { return tl.client.AddAddr("eth0", clientV4) },
		func() error { return tl.client.AddAddr("eth0", clientV6) },
		func() error { return tl.relay.AddAddr("eth0", frontV4) },
		func() error { return tl.relay.AddAddr("eth0", frontV6) },
		func() error { return tl.relay.AddAddr("eth1", backV4) },
		func() error { return tl.relay.AddAddr("eth1", backV6) },
		tl.relay.EnableForwarding,
		// A flow asked once stays in conntrack 30 s by default; on a loaded
		// machine a test's rounds can take longer, and an expired flow is
		// placed again, which is not what the tests look at.
		func() error { return tl.relay.Sysctl("net.netfilter.nf_conntrack_udp_timeout", "300") },
	}
	for i := range 4 {
		a4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 21, byte(2 + i)}), 24)
		a6 := netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8:21::%d", 2+i)), 64)
		steps = append(steps,
			func() error { return tl.backend.AddAddr("eth0", a4) },
			func() error { return tl.backend.AddAddr("eth0", a6) })
		tl.servers4 = append(tl.servers4, netip.AddrPortFrom(a4.Addr(), servePort))
		tl.servers6 = append(tl.servers6, netip.AddrPortFrom(a6.Addr(), servePort))
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range append(tl.servers4, tl.servers6...) {
		tl.serve(t, a, fmt.Sprintf("b%d", i%4))
	}
	return tl
}

// serve answers every datagram to a with "name:" and the datagram.
func (tl *testLab) serve(t testing.TB, a netip.AddrPort, name string) {
	t.Helper()
	pc, err := tl.backend.ListenPacket("udp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
}

// newPath opens a path in the relay host; closed at the end of the test.
func (tl *testLab) newPath(t testing.TB, o Options) *Path {
	t.Helper()
	var p *Path
	if err := tl.relay.Do(func() (err error) { p, err = New(o); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// client is one client flow: a socket with a fixed source port.
type client struct {
	pc  net.PacketConn
	src netip.AddrPort
}

func (tl *testLab) dial(t *testing.T, src netip.AddrPort) *client {
	t.Helper()
	pc, err := tl.client.ListenPacket("udp", src.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &client{pc: pc, src: src}
}

// ask sends one datagram to dst and returns the name in the answer, or ""
// when none came. The answer must come from dst.
func (c *client) ask(t *testing.T, dst netip.AddrPort) string {
	t.Helper()
	buf := make([]byte, 2048)
	for range 4 {
		if _, err := c.pc.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(dst)); err != nil {
			t.Fatal(err)
		}
		c.pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := c.pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		if got := from.(*net.UDPAddr).AddrPort(); got.Addr().Unmap() != dst.Addr() || got.Port() != dst.Port() {
			t.Fatalf("%s: answer from %s, want %s", c.src, got, dst)
		}
		name, _, _ := strings.Cut(string(buf[:n]), ":")
		return name
	}
	return ""
}

// table spreads buckets over servers: bucket i to server i mod len.
func table(size int, servers []netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, size)
	for i := range out {
		out[i] = servers[i%len(servers)]
	}
	return out
}

// want is the name of the server owning src in buckets.
func want(src netip.AddrPort, addrOnly bool, buckets []netip.AddrPort, servers []netip.AddrPort) string {
	b := buckets[Bucket(Hash(src, addrOnly), uint32(len(buckets)))]
	for i, s := range servers {
		if s == b {
			return fmt.Sprintf("b%d", i)
		}
	}
	return ""
}

// size is the relay's default table size: a full table takes many netlink
// messages.
const size = 65537

// baseOptions idles flows out after two minutes: longer than any test
// holds a flow, however loaded the machine (with 7 s, the first of
// TestKernelFlowsStay's 40 flows expired before the table change under
// make test's load and was placed again, "moving").
func baseOptions(name string) Options {
	return Options{Table: name, CtMark: 0x00100000, TableSize: size, IdleTimeout: 2 * time.Minute}
}

// TestKernelPlacesLikeHash checks the kernel's placement against Hash and
// Bucket for both families, with and without the port in the key: the
// relay and the kernel must agree for every client.
func TestKernelPlacesLikeHash(t *testing.T) {
	tl := newLab(t)
	for ai, addrOnly := range []bool{false, true} {
		o := baseOptions(fmt.Sprintf("pier_test_%v", addrOnly))
		o.KeyByAddressOnly = addrOnly
		p := tl.newPath(t, o)
		for fi, fam := range []struct {
			servers     []netip.AddrPort
			client, dst netip.Addr
		}{
			{tl.servers4, clientV4.Addr(), frontV4.Addr()},
			{tl.servers6, clientV6.Addr(), frontV6.Addr()},
		} {
			buckets := table(size, fam.servers)
			if err := p.Apply([]Listener{{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: buckets}}); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for i := range 24 {
				src := netip.AddrPortFrom(fam.client, uint16(41000+1000*ai+100*fi+i))
				got := tl.dial(t, src).ask(t, netip.AddrPortFrom(fam.dst, listen))
				if w := want(src, addrOnly, buckets, fam.servers); got != w {
					t.Fatalf("addrOnly %v: client %s reached %q, want %q", addrOnly, src, got, w)
				}
				seen[got]++
			}
			if wantSpread := !addrOnly; wantSpread != (len(seen) > 1) {
				t.Errorf("addrOnly %v: 24 client ports reached %v", addrOnly, seen)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		flushConntrack(t, tl.relay)
	}
}

func flushConntrack(t *testing.T, h *lab.Host) {
	t.Helper()
	if err := h.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) }); err != nil {
		t.Fatal(err)
	}
}

// TestKernelFlowsStay: a new table moves new flows only; Forget moves the
// flows of a backend that went down; the counters and Flows see them; a
// bucket with no entry reaches the node's own socket.
func TestKernelFlowsStay(t *testing.T) {
	tl := newLab(t)
	p := tl.newPath(t, baseOptions("pier_test_stay"))
	vip := netip.AddrPortFrom(frontV4.Addr(), listen)
	before := table(size, tl.servers4)
	apply := func(b []netip.AddrPort) {
		t.Helper()
		if err := p.Apply([]Listener{{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: b}}); err != nil {
			t.Fatal(err)
		}
	}
	apply(before)
	var clients []*client
	first := map[netip.AddrPort]string{}
	for i := range 40 {
		c := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), uint16(42000+i)))
		clients = append(clients, c)
		first[c.src] = c.ask(t, vip)
	}
	// Server b0 leaves the table; every flow stays where it is.
	after := table(size, tl.servers4[1:])
	apply(after)
	for _, c := range clients {
		if got := c.ask(t, vip); got != first[c.src] {
			t.Fatalf("%s moved from %s to %s on a table change", c.src, first[c.src], got)
		}
	}
	// Forgetting b0 places its flows again, on the new table.
	var n int
	if err := tl.relay.Do(func() (err error) { n, err = p.Forget(tl.servers4[0]); return err }); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, c := range clients {
		got := c.ask(t, vip)
		switch {
		case first[c.src] == "b0" && got != want(c.src, false, after, tl.servers4):
			t.Errorf("%s: after Forget reached %s, want %s", c.src, got, want(c.src, false, after, tl.servers4))
		case first[c.src] != "b0" && got != first[c.src]:
			t.Errorf("%s on %s moved to %s when b0 was forgotten", c.src, first[c.src], got)
		case first[c.src] == "b0":
			moved++
		}
	}
	if moved == 0 || n != moved {
		t.Errorf("Forget deleted %d flows; %d clients were on b0", n, moved)
	}
	checkCounters(t, tl, p, 40)
	// A bucket without an entry (here: every bucket) is the node's.
	apply(make([]netip.AddrPort, size))
	local, err := tl.relay.ListenPacket("udp", netip.AddrPortFrom(netip.IPv6Unspecified(), listen).String())
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := local.ReadFrom(buf)
			if err != nil {
				return
			}
			local.WriteTo(append([]byte("node:"), buf[:n]...), from)
		}
	}()
	if got := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 43000)).ask(t, vip); got != "node" {
		t.Errorf("with an empty map a new flow reached %q, want the node's socket", got)
	}
}

// stats reads p's counters and flows in the relay host.
func stats(t *testing.T, tl *testLab, p *Path) (map[string]Counters, map[uint16]int) {
	t.Helper()
	var cs map[string]Counters
	var fl map[uint16]int
	err := tl.relay.Do(func() (err error) {
		if cs, err = p.Counters(); err != nil {
			return err
		}
		fl, err = p.Flows()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs, fl
}

func checkCounters(t *testing.T, tl *testLab, p *Path, flows int) {
	t.Helper()
	cs, fl := stats(t, tl, p)
	c := cs["u"]
	// Three rounds of one datagram each (and retries): at least 3 per flow.
	if c.PacketsIn < uint64(3*flows) || c.PacketsOut < uint64(3*flows) || c.BytesIn < c.PacketsIn*(8+2) {
		t.Errorf("counters %+v after 3 rounds over %d flows", c, flows)
	}
	if c.NewFlows < uint64(flows) {
		t.Errorf("new flows %d, want at least %d", c.NewFlows, flows)
	}
	if diff := cmp.Diff(map[uint16]int{listen: flows}, fl); diff != "" {
		t.Errorf("Flows (-want +got):\n%s", diff)
	}
}

// TestKernelLimitsAndTimeouts: flows past MaxFlows are refused and counted
// while the others work; flows carry the idle timeout; RemoveTables
// deletes the table.
func TestKernelLimitsAndTimeouts(t *testing.T) {
	tl := newLab(t)
	o := baseOptions("pier_test_limit")
	o.MaxFlows = 5
	o.IdleTimeout = 7 * time.Second // under the kernel's 30 s for UDP
	p := tl.newPath(t, o)
	if err := p.Apply([]Listener{{Name: "u", Addr: frontV4.Addr(), Port: listen, Buckets: table(size, tl.servers4)}}); err != nil {
		t.Fatal(err)
	}
	vip := netip.AddrPortFrom(frontV4.Addr(), listen)
	answered := 0
	var clients []*client
	for i := range 10 {
		c := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), uint16(44000+i)))
		clients = append(clients, c)
		if c.ask(t, vip) != "" {
			answered++
		}
	}
	if answered != 5 {
		t.Errorf("%d of 10 new flows answered, want MaxFlows 5", answered)
	}
	for _, c := range clients[:5] {
		if c.ask(t, vip) == "" {
			t.Errorf("%s: an admitted flow stopped working under the limit", c.src)
		}
	}
	var cs map[string]Counters
	var flows []*netlink.ConntrackFlow
	err := tl.relay.Do(func() (err error) {
		if cs, err = p.Counters(); err != nil {
			return err
		}
		flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs["u"].Refused < 5 {
		t.Errorf("refused %d, want at least 5 (5 flows, each tried 4 times)", cs["u"].Refused)
	}
	for _, f := range flows {
		if f.Mark&o.CtMark != 0 && f.TimeOut > 7 {
			t.Errorf("flow %s: timeout %d s, want at most the idle timeout 7 s", f, f.TimeOut)
		}
	}
	if err := tl.relay.Do(func() error { return RemoveTables("pier_test", "") }); err != nil {
		t.Fatal(err)
	}
	if got := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 45000)).ask(t, vip); got != "" {
		t.Errorf("after RemoveTables a new flow reached %s", got)
	}
}

// TestKernelFlood: 3,000 new flows against MaxFlows 1,000: the kernel holds
// exactly 1,000, counts the rest as refused, and a flow admitted before the
// flood keeps working.
func TestKernelFlood(t *testing.T) {
	tl := newLab(t)
	o := baseOptions("pier_test_flood")
	o.MaxFlows = 1000
	p := tl.newPath(t, o)
	if err := p.Apply([]Listener{{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: table(size, tl.servers4)}}); err != nil {
		t.Fatal(err)
	}
	vip := netip.AddrPortFrom(frontV4.Addr(), listen)
	call := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 46000))
	first := call.ask(t, vip)
	if first == "" {
		t.Fatal("no answer before the flood")
	}
	to := net.UDPAddrFromAddrPort(vip)
	for i := range 3000 {
		c := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), uint16(50000+i)))
		if _, err := c.pc.WriteTo([]byte("flood"), to); err != nil {
			t.Fatal(err)
		}
		c.pc.Close()
	}
	time.Sleep(300 * time.Millisecond)
	if got := call.ask(t, vip); got != first {
		t.Errorf("the call answered by %q during the flood, want %s", got, first)
	}
	cs, fl := stats(t, tl, p)
	if fl[listen] != 1000 || cs["u"].Refused != 2001 {
		t.Errorf("after 3,001 new flows against 1,000: %d in conntrack, %d refused; want 1,000 and 2,001", fl[listen], cs["u"].Refused)
	}
}

// TestKernelVIPs: datagrams to a listener's VIP, an address the relay host
// does not have (kube-proxy's LoadBalancer addresses), are placed like
// those to its own addresses and answered from the VIP; a VIP taken away
// takes no new flow.
func TestKernelVIPs(t *testing.T) {
	tl := newLab(t)
	vip4, vip6 := netip.MustParseAddr("198.18.30.1"), netip.MustParseAddr("2001:db8:30::1")
	for _, r := range []struct{ dst, via netip.Addr }{{vip4, frontV4.Addr()}, {vip6, frontV6.Addr()}} {
		if err := tl.client.AddRoute(netip.PrefixFrom(r.dst, r.dst.BitLen()), r.via); err != nil {
			t.Fatal(err)
		}
	}
	p := tl.newPath(t, baseOptions("pier_test_vips"))
	l := Listener{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, VIPs: []netip.Addr{vip4, vip6}}
	for i, fam := range []struct {
		servers     []netip.AddrPort
		client, vip netip.Addr
	}{{tl.servers4, clientV4.Addr(), vip4}, {tl.servers6, clientV6.Addr(), vip6}} {
		l.Buckets = table(size, fam.servers)
		if err := p.Apply([]Listener{l}); err != nil {
			t.Fatal(err)
		}
		for j := range 8 {
			src := netip.AddrPortFrom(fam.client, uint16(47000+100*i+j))
			got := tl.dial(t, src).ask(t, netip.AddrPortFrom(fam.vip, listen))
			if w := want(src, false, l.Buckets, fam.servers); got != w {
				t.Fatalf("client %s to VIP %s reached %q, want %q", src, fam.vip, got, w)
			}
		}
	}
	l.VIPs = []netip.Addr{vip6}
	if err := p.Apply([]Listener{l}); err != nil {
		t.Fatal(err)
	}
	if got := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 47500)).ask(t, netip.AddrPortFrom(vip4, listen)); got != "" {
		t.Errorf("a new flow to the removed VIP %s reached %s", vip4, got)
	}
	if got := tl.dial(t, netip.AddrPortFrom(clientV6.Addr(), 47501)).ask(t, netip.AddrPortFrom(vip6, listen)); got == "" {
		t.Errorf("no answer through the VIP %s that stayed", vip6)
	}
}

// TestKernelStop: after Stop new flows reach the node's socket (none here:
// unanswered) while placed flows go on; Apply brings placement back.
func TestKernelStop(t *testing.T) {
	tl := newLab(t)
	p := tl.newPath(t, baseOptions("pier_test_stop"))
	l := Listener{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: table(size, tl.servers4)}
	if err := p.Apply([]Listener{l}); err != nil {
		t.Fatal(err)
	}
	vip := netip.AddrPortFrom(frontV4.Addr(), listen)
	placed := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 48000))
	first := placed.ask(t, vip)
	if err := tl.relay.Do(p.Stop); err != nil {
		t.Fatal(err)
	}
	if got := placed.ask(t, vip); got != first || got == "" {
		t.Errorf("placed flow answered by %q after Stop, want %s", got, first)
	}
	if got := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 48001)).ask(t, vip); got != "" {
		t.Errorf("a new flow was placed on %s after Stop", got)
	}
	if err := p.Apply([]Listener{l}); err != nil {
		t.Fatal(err)
	}
	if got := tl.dial(t, netip.AddrPortFrom(clientV4.Addr(), 48002)).ask(t, vip); got == "" {
		t.Error("no placement after Apply following Stop")
	}
}
