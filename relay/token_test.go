package relay

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTokenExtract(t *testing.T) {
	type out struct {
		Name string
		OK   bool
	}
	cases := []struct {
		name string
		tok  TokenOptions
		p    string
		want out
	}{
		{name: "at 0, exact", tok: TokenOptions{Length: 4}, p: "srv1", want: out{"srv1", true}},
		{name: "at 0, more after", tok: TokenOptions{Length: 4}, p: "srv1rest", want: out{"srv1", true}},
		{name: "offset", tok: TokenOptions{Offset: 3, Length: 4}, p: "hdrsrv2tail", want: out{"srv2", true}},
		{name: "NUL padding", tok: TokenOptions{Offset: 1, Length: 8}, p: "Hsrv3\x00\x00\x00\x00x", want: out{"srv3", true}},
		{name: "space padding", tok: TokenOptions{Length: 8}, p: "srv3    ", want: out{"srv3", true}},
		{name: "mixed padding", tok: TokenOptions{Length: 8}, p: "srv3 \x00 \x00", want: out{"srv3", true}},
		{name: "leading space kept", tok: TokenOptions{Length: 6}, p: " srv3 ", want: out{" srv3", true}},
		{name: "inner NUL kept", tok: TokenOptions{Length: 6}, p: "sr\x00v3\x00", want: out{"sr\x00v3", true}},
		{name: "all padding", tok: TokenOptions{Length: 4}, p: "\x00\x00  ", want: out{"", true}},
		{name: "one byte short", tok: TokenOptions{Offset: 2, Length: 4}, p: "xxsrv", want: out{}},
		{name: "empty", tok: TokenOptions{Length: 1}, p: "", want: out{}},
		{name: "offset past the end", tok: TokenOptions{Offset: 100, Length: 1}, p: "srv1", want: out{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, ok := tc.tok.extract([]byte(tc.p))
			if diff := cmp.Diff(tc.want, out{string(name), ok}); diff != "" {
				t.Errorf("extract(%q) (-want +got):\n%s", tc.p, diff)
			}
		})
	}
}

func TestTokenBackend(t *testing.T) {
	l := []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:1")}}
	lo := netip.MustParseAddr("127.0.0.1")
	r, err := New(Options{Listeners: l, Token: TokenOptions{Offset: 2, Length: 8},
		Backends: []Backend{{Name: "srv1", Addr: lo}, {Name: "srv2", Addr: lo}, {Name: "srv3", Addr: lo}}})
	if err != nil {
		t.Fatal(err)
	}
	r.markDown(r.backend("srv2"), "test", errors.New("test"))
	type out struct {
		Backend, Result string
	}
	cases := []struct {
		name, p string
		want    out
	}{
		{name: "up backend", p: "..srv1\x00\x00\x00\x00", want: out{"srv1", tokenRouted}},
		{name: "up backend, space padded, payload after", p: "..srv3    payload", want: out{"srv3", tokenRouted}},
		{name: "down backend", p: "..srv2\x00\x00\x00\x00", want: out{"", tokenDown}},
		{name: "unknown name", p: "..srv9\x00\x00\x00\x00", want: out{"", tokenUnknown}},
		{name: "prefix of a name", p: "..srv\x00\x00\x00\x00\x00", want: out{"", tokenUnknown}},
		{name: "name not padded", p: "..srv1xxxx", want: out{"", tokenUnknown}},
		{name: "empty name", p: "..\x00\x00\x00\x00\x00\x00\x00\x00", want: out{"", tokenUnknown}},
		{name: "short", p: "..srv1", want: out{"", tokenShort}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, result := r.tokenBackend([]byte(tc.p))
			got := out{Result: result}
			if b != nil {
				got.Backend = b.Name
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("tokenBackend(%q) (-want +got):\n%s", tc.p, diff)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	cases := []struct {
		in      string
		want    TokenOptions
		wantErr bool
	}{
		{in: "0:16", want: TokenOptions{Length: 16}},
		{in: "4:63", want: TokenOptions{Offset: 4, Length: 63}},
		{in: "4:64", wantErr: true},
		{in: "-1:4", wantErr: true},
		{in: "4", wantErr: true},
		{in: "a:4", wantErr: true},
		{in: "4:", wantErr: true},
	}
	for _, tc := range cases {
		got, err := ParseToken(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseToken(%q): error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseToken(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestNewValidatesToken(t *testing.T) {
	l := []Listener{{Name: "x", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:1")}}
	for name, tok := range map[string]TokenOptions{
		"length 64":       {Length: 64},
		"negative offset": {Offset: -1, Length: 4},
		"negative length": {Length: -1},
		"negative wait":   {Length: 4, Timeout: -time.Second},
	} {
		if _, err := New(Options{Listeners: l, Token: tok}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Options{Listeners: l, Token: TokenOptions{Offset: 1024, Length: 63}}); err != nil {
		t.Errorf("offset 1024, length 63: %v", err)
	}
}

func TestKernelRefusesToken(t *testing.T) {
	r, err := New(Options{
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:1")}},
		Kernel:    KernelOptions{Enabled: true, Tables: NewFakeKernel()}, Token: TokenOptions{Length: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.openKernel(); err == nil || !strings.Contains(err.Error(), "routing token") {
		t.Fatalf("openKernel with a token: %v, want a routing token error", err)
	}
	if r.kernel != nil {
		t.Fatal("kernel data path opened with a token")
	}
}

// tokenOffset and tokenLen are the token the socket tests configure.
const (
	tokenOffset = 2
	tokenLen    = 8
)

// withToken is payload carrying name as its token, NUL-padded.
func withToken(name, payload string) string {
	return "v1" + name + strings.Repeat("\x00", tokenLen-len(name)) + payload
}

// tokenRelay runs srv1, srv2, srv3 and a backend "gone" that nothing
// serves, marked down by the active check before it returns.
func tokenRelay(t *testing.T, proxy bool, wait time.Duration) (*running, []*testBackend) {
	bs := []*testBackend{
		startBackend(t, "srv1", "127.0.0.1", proxy),
		startBackend(t, "srv2", "127.0.0.1", proxy),
		startBackend(t, "srv3", "127.0.0.1", proxy),
	}
	gone := Backend{Name: "gone", Addr: netip.MustParseAddr("127.0.0.1"),
		Ports: map[string]uint16{"tcp": closedPort(t), "udp": closedPort(t)}}
	r := startRelay(t, Options{
		Backends:       append(backends(bs...), gone),
		Token:          TokenOptions{Offset: tokenOffset, Length: tokenLen, Timeout: wait},
		HealthInterval: 50 * time.Millisecond,
	})
	eventually(t, "gone marked down", func() bool {
		return r.counter(r.metrics.backendUp.WithLabelValues("gone")) == 0
	})
	return r, bs
}

// clientAddr returns a free loopback port of network whose Maglev owner on
// listener is not avoid, and that owner.
func clientAddr(t *testing.T, r *running, network, listener, avoid string) (netip.AddrPort, string) {
	t.Helper()
	for range 100 {
		var a netip.AddrPort
		if network == "udp" {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			a = pc.LocalAddr().(*net.UDPAddr).AddrPort()
			pc.Close()
		} else {
			a = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), closedPort(t))
		}
		if owner := r.table(listener).Lookup(HashKey(a, false)); owner != avoid {
			return a, owner
		}
	}
	t.Fatalf("no client port owned by another backend than %s", avoid)
	return netip.AddrPort{}, ""
}

func TestUDPTokenRouting(t *testing.T) {
	r, _ := tokenRelay(t, false, 0)
	cases := []struct {
		name, token, want, result string // want "" means the Maglev owner
	}{
		{name: "token names srv3", token: "srv3", want: "srv3", result: tokenRouted},
		{name: "unknown token", token: "srv9", result: tokenUnknown},
		{name: "token names a down backend", token: "gone", result: tokenDown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			from, owner := clientAddr(t, r, "udp", "udp", "srv3")
			want := tc.want
			if want == "" {
				want = owner
			}
			c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(from), net.UDPAddrFromAddrPort(r.Addr("udp")))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			counter := r.metrics.tokens.WithLabelValues("udp", tc.result)
			before := r.counter(counter)
			if got := udpAsk(t, c, withToken(tc.token, "hello")); got != want {
				t.Fatalf("first datagram from %s (Maglev owner %s) went to %s, want %s", from, owner, got, want)
			}
			for range 3 { // later datagrams carry no token and stay
				if got := udpAsk(t, c, "later"); got != want {
					t.Fatalf("flow moved from %s to %s", want, got)
				}
			}
			if got := r.FlowBackends("udp")[from]; got != want {
				t.Errorf("flow table: %s on %q, want %s", from, got, want)
			}
			if d := r.counter(counter) - before; d != 1 {
				t.Errorf("pier_relay_token_routed_total{udp,%s} rose by %v, want 1", tc.result, d)
			}
		})
	}
}

func TestUDPTokenShortDatagram(t *testing.T) {
	r, _ := tokenRelay(t, false, 0)
	from, owner := clientAddr(t, r, "udp", "udp", "")
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(from), net.UDPAddrFromAddrPort(r.Addr("udp")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := udpAsk(t, c, "v1srv3"); got != owner {
		t.Fatalf("short datagram went to %s, want the Maglev owner %s", got, owner)
	}
	if n := r.counter(r.metrics.tokens.WithLabelValues("udp", tokenShort)); n != 1 {
		t.Errorf("short tokens counted %v, want 1", n)
	}
}

// tcpToken connects from a port whose Maglev owner is not avoid, writes
// the chunks with a pause between them, half-closes and returns the
// backend's name, the echo, the Maglev owner and the client address.
func tcpToken(t *testing.T, r *running, avoid string, chunks ...string) (name, echo, owner string, from netip.AddrPort) {
	t.Helper()
	from, owner = clientAddr(t, r, "tcp", "tcp", avoid)
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(from), Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", r.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, s := range chunks {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read name: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	return strings.TrimSuffix(line, "\n"), string(rest), owner, from
}

func TestTCPTokenRouting(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "PROXY v2"}[proxy], func(t *testing.T) {
			r, bs := tokenRelay(t, proxy, 0)
			cases := []struct {
				name   string
				chunks []string
				want   string // "" means the Maglev owner
				result string
			}{
				{name: "token names srv2", chunks: []string{withToken("srv2", "hello, srv2")}, want: "srv2", result: tokenRouted},
				{name: "token split over writes", chunks: []string{"v1sr", "v2\x00\x00", "\x00\x00and the rest"}, want: "srv2", result: tokenRouted},
				{name: "unknown token", chunks: []string{withToken("nosuch", "data")}, result: tokenUnknown},
				{name: "token names a down backend", chunks: []string{withToken("gone", "data")}, result: tokenDown},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					counter := r.metrics.tokens.WithLabelValues("tcp", tc.result)
					before := r.counter(counter)
					name, echo, owner, from := tcpToken(t, r, "srv2", tc.chunks...)
					want := tc.want
					if want == "" {
						want = owner
					}
					if name != want {
						t.Errorf("connection (Maglev owner %s) went to %s, want %s", owner, name, want)
					}
					if diff := cmp.Diff(strings.Join(tc.chunks, ""), echo); diff != "" {
						t.Errorf("echo (-sent +echoed):\n%s", diff)
					}
					if d := r.counter(counter) - before; d != 1 {
						t.Errorf("pier_relay_token_routed_total{tcp,%s} rose by %v, want 1", tc.result, d)
					}
					if proxy && name == "srv2" && !sawProxy(bs[1], from, r.Addr("tcp")) {
						t.Errorf("srv2 got no PROXY header %s>%s before the first bytes", from, r.Addr("tcp"))
					}
				})
			}
		})
	}
}

// sawProxy reports whether b read a PROXY header naming client and dst.
func sawProxy(b *testBackend, client, dst netip.AddrPort) bool {
	for _, h := range b.seen() {
		if h.SourceAddr != nil && h.DestinationAddr != nil &&
			h.SourceAddr.String() == client.String() && h.DestinationAddr.String() == dst.String() {
			return true
		}
	}
	return false
}

func TestTCPTokenShortWaitsThenPlaces(t *testing.T) {
	r, _ := tokenRelay(t, false, 200*time.Millisecond)
	start := time.Now()
	name, echo, owner, _ := tcpToken(t, r, "", "v1srv")
	if name != owner {
		t.Errorf("short token went to %s, want the Maglev owner %s", name, owner)
	}
	if echo != "v1srv" {
		t.Errorf("echo %q, want %q", echo, "v1srv")
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("placed after %v, before the token timeout", waited)
	}
	if n := r.counter(r.metrics.tokens.WithLabelValues("tcp", tokenShort)); n != 1 {
		t.Errorf("short tokens counted %v, want 1", n)
	}
}
