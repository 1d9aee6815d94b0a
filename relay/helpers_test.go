package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testBackend is a server that answers with its name: TCP sends "name\n"
// then echoes (closing its write side at EOF), UDP replies "name:payload".
type testBackend struct {
	Backend
	stopUDP func() // closes the UDP socket: datagrams then draw port unreachable
	mu      sync.Mutex
	headers []*proxyproto.Header
}

func (b *testBackend) seen() []*proxyproto.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*proxyproto.Header(nil), b.headers...)
}

func (b *testBackend) record(h *proxyproto.Header) {
	b.mu.Lock()
	b.headers = append(b.headers, h)
	b.mu.Unlock()
}

func startBackend(t testing.TB, name, host string, proxy bool) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	b := &testBackend{Backend: Backend{
		Name: name, Addr: netip.MustParseAddr(host), ProxyProtocol: proxy,
		Ports: map[string]uint16{
			"tcp":  uint16(ln.Addr().(*net.TCPAddr).Port),
			"udp":  uint16(pc.LocalAddr().(*net.UDPAddr).Port),
			"udp6": uint16(pc.LocalAddr().(*net.UDPAddr).Port),
		},
	}}
	b.stopUDP = func() { pc.Close() }
	go serveNamedTCP(ln, b)
	go serveNamedUDP(pc, b)
	return b
}

func serveNamedTCP(ln net.Listener, b *testBackend) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			if b.ProxyProtocol {
				h, err := proxyproto.Read(r)
				if err != nil {
					return
				}
				b.record(h)
			}
			io.WriteString(c, b.Name+"\n")
			io.Copy(c, r)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, r)
		}()
	}
}

func serveNamedUDP(pc net.PacketConn, b *testBackend) {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		if b.ProxyProtocol {
			r := bufio.NewReader(bytes.NewReader(p))
			h, err := proxyproto.Read(r)
			if err != nil {
				continue
			}
			b.record(h)
			p, _ = io.ReadAll(r)
		}
		pc.WriteTo(append([]byte(b.Name+":"), p...), from)
	}
}

func backends(bs ...*testBackend) []Backend {
	var out []Backend
	for _, b := range bs {
		out = append(out, b.Backend)
	}
	return out
}

type running struct {
	*Relay
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// startRelay runs a relay until the test ends.
func startRelay(t testing.TB, opts Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Metrics = NewMetrics(reg)
	if opts.Listeners == nil {
		opts.Listeners = []Listener{
			{Name: "tcp", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
			{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		}
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{Relay: r, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-run.done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-r.Ready():
	case err := <-run.done:
		t.Fatalf("run: %v", err)
	}
	return run
}

// counter reads one counter or gauge.
func (r *running) counter(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpHello connects through the relay and returns the backend's name.
func tcpHello(t testing.TB, addr netip.AddrPort) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read name: %v", err)
	}
	return strings.TrimSuffix(line, "\n"), c
}

// udpAsk sends payload on c until a reply comes (datagrams may be lost while
// a backend is being marked down) and returns the backend's name.
func udpAsk(t testing.TB, c net.Conn, payload string) string {
	t.Helper()
	buf := make([]byte, 2048)
	for range 50 {
		if _, err := c.Write([]byte(payload)); err != nil && !errors.Is(err, net.ErrClosed) {
			continue // ECONNREFUSED from an earlier datagram
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		name, got, _ := strings.Cut(string(buf[:n]), ":")
		if got != payload {
			t.Fatalf("reply %q to %q", buf[:n], payload)
		}
		return name
	}
	t.Fatalf("no reply to %q from %s", payload, c.RemoteAddr())
	return ""
}

func dialUDP(t testing.TB, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
