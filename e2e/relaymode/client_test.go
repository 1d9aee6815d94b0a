package relaymode

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
)

// udpFlow is one client flow: a socket of the client host bound to one
// source address and port.
type udpFlow struct {
	pc  net.PacketConn
	src netip.AddrPort
}

// newFlow opens a UDP socket in h on src (port 0: any).
func newFlow(t testing.TB, h *lab.Host, src netip.AddrPort) *udpFlow {
	t.Helper()
	network := "udp4"
	if src.Addr().Is6() {
		network = "udp6"
	}
	pc, err := h.ListenPacket(network, src.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &udpFlow{pc: pc, src: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// ask sends payload to dst until a reply comes from dst (datagrams may be
// lost while the path settles) and returns who answered, or an error after
// tries attempts.
func (f *udpFlow) ask(dst netip.AddrPort, payload string, tries int) (echo.Whoami, error) {
	buf := make([]byte, 2048)
	var last error
	for range tries {
		if _, err := f.pc.WriteTo([]byte(payload), net.UDPAddrFromAddrPort(dst)); err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		deadline := time.Now().Add(300 * time.Millisecond)
		for {
			_ = f.pc.SetReadDeadline(deadline)
			n, from, err := f.pc.ReadFrom(buf)
			if err != nil {
				last = err
				break
			}
			fa := from.(*net.UDPAddr).AddrPort()
			if netip.AddrPortFrom(fa.Addr().Unmap(), fa.Port()) != dst {
				last = fmt.Errorf("reply from %s, want %s", from, dst)
				continue // a late reply of an earlier ask elsewhere
			}
			w, err := echo.ParseWhoami(string(buf[:n]))
			if err != nil {
				return w, err
			}
			if w.Payload != payload {
				last = fmt.Errorf("reply %q to %q", buf[:n], payload)
				continue // a late reply to an earlier payload
			}
			return w, nil
		}
	}
	return echo.Whoami{}, fmt.Errorf("%s -> %s: no answer: %v", f.src, dst, last)
}

// mustAsk is ask with a generous number of tries that fails the test.
func (f *udpFlow) mustAsk(t testing.TB, dst netip.AddrPort, payload string) echo.Whoami {
	t.Helper()
	w, err := f.ask(dst, payload, 30)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// tcpWhoami connects from h to dst, reads who answered, checks the echo,
// and returns the answer with the connection's local address.
func tcpWhoami(ctx context.Context, h *lab.Host, dst netip.AddrPort) (echo.Whoami, netip.AddrPort, error) {
	c, err := h.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return echo.Whoami{}, netip.AddrPort{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return echo.Whoami{}, local, fmt.Errorf("tcp %s: %w", dst, err)
	}
	w, err := echo.ParseWhoami(line)
	if err != nil {
		return w, local, err
	}
	const msg = "a call's signalling"
	if _, err := io.WriteString(c, msg); err != nil {
		return w, local, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != msg {
		return w, local, fmt.Errorf("tcp %s: echoed %q, %v", dst, got, err)
	}
	return w, netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), nil
}

// mustTCP retries tcpWhoami for up to 30 s.
func mustTCP(t testing.TB, h *lab.Host, dst netip.AddrPort) (echo.Whoami, netip.AddrPort) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		w, local, err := tcpWhoami(ctx, h, dst)
		cancel()
		if err == nil {
			return w, local
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcp from %s to %s: %v", h.Name, dst, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape reads /metrics from inside a host.
func scrape(t testing.TB, h *lab.Host, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.Dial}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, h.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// clientV4 and clientV6 are the client host's addresses.
func clientAddrs() (netip.Addr, netip.Addr) {
	v4, v6 := lab.ClientAddrs()
	return v4.Addr(), v6.Addr()
}
