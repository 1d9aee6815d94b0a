package relay

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func three(t testing.TB, proxy bool) []*testBackend {
	return []*testBackend{
		startBackend(t, "a", "127.0.0.1", proxy),
		startBackend(t, "b", "127.0.0.1", proxy),
		startBackend(t, "c", "127.0.0.1", proxy),
	}
}

func TestNewValidates(t *testing.T) {
	l := []Listener{{Name: "x", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:1")}}
	for name, o := range map[string]Options{
		"no listeners": {},
		"bad protocol": {Listeners: []Listener{{Name: "x", Protocol: "SCTP", Addr: l[0].Addr}}},
		"dup backend":  {Listeners: l, Backends: []Backend{{Name: "a", Addr: l[0].Addr.Addr()}, {Name: "a", Addr: l[0].Addr.Addr()}}},
		"table size":   {Listeners: l, TableSize: 100},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTCPHalfClose(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...)})
	name, c := tcpHello(t, r.Addr("tcp"))
	defer c.Close()
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite() // the backend sees EOF, echoes, then closes its side
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != "hello" {
		t.Fatalf("after half-close from %s: %q, %v", name, rest, err)
	}
}

func TestUDPStickyAndRepliesFromDestination(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), Listeners: []Listener{
		{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("0.0.0.0:0")},
		{Name: "udp6", Protocol: UDP, Addr: netip.MustParseAddrPort("[::]:0")},
	}})
	// Connected client sockets accept replies only from the address they
	// sent to: 127.0.0.2 is not the relay's primary loopback address. The
	// IPv6 wildcard listener is dual-stack: it takes IPv4 clients too.
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), r.Addr("udp").Port()),
		netip.AddrPortFrom(netip.MustParseAddr("::1"), r.Addr("udp6").Port()),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), r.Addr("udp6").Port()),
	} {
		c := dialUDP(t, dst)
		first := udpAsk(t, c, "ping")
		for range 5 {
			if got := udpAsk(t, c, "again"); got != first {
				t.Fatalf("%s: flow moved from %s to %s", dst, first, got)
			}
		}
	}
}

func TestUDPFlowsStayWhenBackendsChange(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs[:2]...)})
	var conns []net.Conn
	placed := map[int]string{}
	for i := range 20 {
		c := dialUDP(t, r.Addr("udp"))
		conns = append(conns, c)
		placed[i] = udpAsk(t, c, "x")
	}
	if err := r.SetBackends(backends(bs...)); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		if got := udpAsk(t, c, "y"); got != placed[i] {
			t.Errorf("flow %d moved from %s to %s after a backend was added", i, placed[i], got)
		}
	}
}

// closedPort returns a loopback TCP port with nothing listening.
func closedPort(t testing.TB) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return uint16(p)
}

func TestTCPConnectFailureMarksDownAndCheckBringsBack(t *testing.T) {
	live := startBackend(t, "live", "127.0.0.1", false)
	port := closedPort(t)
	dead := Backend{Name: "dead", Addr: netip.MustParseAddr("127.0.0.1"), Ports: map[string]uint16{"tcp": port}}
	r := startRelay(t, Options{
		Backends:       []Backend{live.Backend, dead},
		ConnectTimeout: time.Second, HealthInterval: 50 * time.Millisecond,
	})
	for range 20 { // about half of these first pick "dead"
		name, c := tcpHello(t, r.Addr("tcp"))
		c.Close()
		if name != "live" {
			t.Fatalf("landed on %q", name)
		}
	}
	if up := r.counter(r.metrics.backendUp.WithLabelValues("dead")); up != 0 {
		t.Fatalf("dead backend up=%v", up)
	}
	if diff := r.table("tcp").Backends(); len(diff) != 1 || diff[0] != "live" {
		t.Fatalf("table %v, want only live", diff)
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(dead.Addr, port).String())
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", port, err)
	}
	defer ln.Close()
	eventually(t, "dead backend back up", func() bool {
		return r.counter(r.metrics.backendUp.WithLabelValues("dead")) == 1
	})
}

func TestUDPPortUnreachableReplaces(t *testing.T) {
	live := startBackend(t, "live", "127.0.0.1", false)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	dead := Backend{Name: "dead", Addr: netip.MustParseAddr("127.0.0.1"), Ports: map[string]uint16{"udp": port}}
	r := startRelay(t, Options{Backends: []Backend{live.Backend, dead}, HealthInterval: time.Hour})
	for i := range 20 {
		c := dialUDP(t, r.Addr("udp"))
		if got := udpAsk(t, c, "x"); got != "live" {
			t.Fatalf("client %d: reply from %q", i, got)
		}
	}
	if up := r.counter(r.metrics.backendUp.WithLabelValues("dead")); up != 0 {
		t.Fatalf("dead backend up=%v", up)
	}
}

func TestProxyProtocolV2(t *testing.T) {
	bs := three(t, true)
	r := startRelay(t, Options{Backends: backends(bs...)})
	_, c := tcpHello(t, r.Addr("tcp"))
	tcpClient := c.LocalAddr().(*net.TCPAddr).AddrPort()
	c.Close()
	u := dialUDP(t, r.Addr("udp"))
	udpAsk(t, u, "payload") // the backend strips the header and checks the payload
	udpClient := u.LocalAddr().(*net.UDPAddr).AddrPort()
	want := map[string]bool{
		tcpClient.String() + ">" + r.Addr("tcp").String(): true,
		udpClient.String() + ">" + r.Addr("udp").String(): true,
	}
	for _, b := range bs {
		for _, h := range b.seen() {
			if h.Version != 2 {
				t.Errorf("version %d", h.Version)
			}
			delete(want, h.SourceAddr.String()+">"+h.DestinationAddr.String())
		}
	}
	if len(want) != 0 {
		t.Errorf("headers not seen: %v", want)
	}
}

// A flood of single datagrams from new ports fills the table: the flood's
// flows take each other's places (evicted) or are dropped while all are
// within their grace time, the table stays at its limit, and a flow whose
// client sent more than one datagram keeps its backend.
func TestUDPFloodFullTable(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), MaxFlows: 1000})
	old := dialUDP(t, r.Addr("udp"))
	first := udpAsk(t, old, "old")
	if again := udpAsk(t, old, "again"); again != first {
		t.Fatalf("flow moved from %s to %s before the flood", first, again)
	}
	const ports = 5000
	for batch := 0; batch < ports; batch += 500 {
		var cs []net.Conn
		for range 500 {
			c, err := net.Dial("udp", r.Addr("udp").String())
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("flood"))
			cs = append(cs, c)
		}
		for _, c := range cs {
			c.Close()
		}
	}
	full := r.metrics.drops.WithLabelValues("udp", dropTableFull)
	eventually(t, "table-full drops or evictions", func() bool { return r.counter(full)+r.counter(r.metrics.evictions) > 0 })
	if n := r.counter(r.metrics.activeFlows.WithLabelValues("udp")); n > 1000 {
		t.Errorf("%v active flows, limit 1000", n)
	}
	if got := udpAsk(t, old, "still"); got != first {
		t.Errorf("existing flow moved from %s to %s", first, got)
	}
	t.Logf("of %d flood flows: %v table-full drops, %v evicted", ports, r.counter(full), r.counter(r.metrics.evictions))
}

func TestUDPIdleExpiry(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), UDPIdleTimeout: 50 * time.Millisecond})
	udpAsk(t, dialUDP(t, r.Addr("udp")), "x")
	eventually(t, "flow expired", func() bool { return len(r.FlowBackends("udp")) == 0 })
}

func TestDrain(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), DrainTimeout: time.Minute})
	_, c := tcpHello(t, r.Addr("tcp"))
	r.cancel()
	eventually(t, "listener closed", func() bool {
		c2, err := net.Dial("tcp", r.Addr("tcp").String())
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	io.WriteString(c, "during drain") // the old connection still works
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during drain" {
		t.Fatalf("during drain: %q %v", buf, err)
	}
	select {
	case err := <-r.done:
		t.Fatalf("run returned with a connection open: %v", err)
	default:
	}
	c.Close()
	err := <-r.done
	r.done <- err // for the cleanup
}

func TestDrainDeadline(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), DrainTimeout: 50 * time.Millisecond})
	_, c := tcpHello(t, r.Addr("tcp"))
	defer c.Close()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the drain deadline")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Logf("closed: %v", err)
	}
}

func TestUDPBackendDeathMovesOnlyItsFlows(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), HealthInterval: time.Hour})
	var conns []net.Conn
	var before []string
	for range 30 {
		c := dialUDP(t, r.Addr("udp"))
		conns = append(conns, c)
		before = append(before, udpAsk(t, c, "x"))
	}
	bs[1].stopUDP() // "b" goes away
	for i, c := range conns {
		got := udpAsk(t, c, "y")
		switch {
		case got == "b":
			t.Errorf("flow %d still on the dead backend", i)
		case before[i] != "b" && got != before[i]:
			t.Errorf("flow %d on live %s moved to %s", i, before[i], got)
		}
	}
	if up := r.counter(r.metrics.backendUp.WithLabelValues("b")); up != 0 {
		t.Errorf("b up=%v", up)
	}
	// A reply is counted once its send returns, which may be after the
	// client has read it.
	for _, dir := range []string{dirIn, dirOut} {
		eventually(t, "packets "+dir+" at least 60", func() bool {
			return r.counter(r.metrics.packets.WithLabelValues("udp", dir)) >= 60
		})
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	bs := three(t, false)
	r := startRelay(t, Options{Backends: backends(bs...), TCPIdleTimeout: 100 * time.Millisecond})
	_, c := tcpHello(t, r.Addr("tcp"))
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from an idle connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("relay did not close the idle connection")
	}
}

func TestKeyByAddressOnly(t *testing.T) {
	var bs []*testBackend
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		bs = append(bs, startBackend(t, n, "127.0.0.1", false))
	}
	r := startRelay(t, Options{Backends: backends(bs...), KeyByAddressOnly: true})
	first := udpAsk(t, dialUDP(t, r.Addr("udp")), "x")
	for i := range 10 { // new source ports each time
		if got := udpAsk(t, dialUDP(t, r.Addr("udp")), "x"); got != first {
			t.Fatalf("port %d of the same client landed on %s, first on %s", i, got, first)
		}
	}
}
