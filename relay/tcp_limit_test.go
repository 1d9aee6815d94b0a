package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

// emfileListener fails every Accept with EMFILE, as a listener does once
// the process is out of descriptors.
type emfileListener struct {
	accepts atomic.Int64
	closed  chan struct{}
}

func (l *emfileListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	l.accepts.Add(1)
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}
func (l *emfileListener) Close() error   { close(l.closed); return nil }
func (l *emfileListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestTCPAcceptBackoff: a listener failing with EMFILE is retried after 5
// ms, then 10, 20, ... up to 1 s, not at once (the loop spun at 12,000 to
// 30,000 failures a second).
func TestTCPAcceptBackoff(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	r, err := New(Options{Clock: clk, Listeners: []Listener{{Name: "tcp", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}})
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{closed: make(chan struct{})}
	s := r.newTCPServer(r.opts.Listeners[0], slog.New(slog.DiscardHandler), ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx) }()
	waitAccepts := func(want int64) {
		t.Helper()
		eventually(t, "the accept loop to wait on the clock", clk.HasWaiters)
		if got := ln.accepts.Load(); got != want {
			t.Fatalf("accepts = %d, want %d", got, want)
		}
	}
	waitAccepts(1)
	delay := 5 * time.Millisecond
	for i := int64(2); i <= 12; i++ {
		clk.Step(delay - time.Nanosecond)
		time.Sleep(time.Millisecond) // let a wrongly early retry show
		if got := ln.accepts.Load(); got != i-1 {
			t.Fatalf("accepts = %d before the %v back-off passed, want %d", got, delay, i-1)
		}
		clk.Step(time.Nanosecond)
		eventually(t, "a retry", func() bool { return ln.accepts.Load() == i })
		waitAccepts(i)
		delay = min(2*delay, time.Second)
	}
	if got := (&running{}).counter(r.metrics.acceptErrors.WithLabelValues("tcp")); got != 12 {
		t.Errorf("accept errors counted %v, want 12", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestTCPConnectionLimits: connections beyond the source's or the
// listener's limit are reset at once and counted; the admitted ones, a
// UDP call and a connection after one ended are served.
func TestTCPConnectionLimits(t *testing.T) {
	b := startBackend(t, "srv1", "127.0.0.1", false)
	r := startRelay(t, Options{Backends: backends(b), MaxTCPConns: 3, MaxTCPConnsPerSource: 2})
	addr := r.Addr("tcp")
	call := dialUDP(t, r.Addr("udp"))
	from := func(src string) (net.Conn, string) {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr.String())
		if errors.Is(err, syscall.ECONNRESET) {
			return nil, "refused" // reset before the dial saw the handshake end
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return c, "refused"
		}
		return c, strings.TrimSuffix(string(buf[:n]), "\n")
	}
	refused := func(reason string) float64 {
		return r.counter(r.metrics.tcpRefused.WithLabelValues("tcp", reason))
	}
	first, got := from("127.0.0.1")
	var results []string
	results = append(results, got)
	for _, src := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"} {
		_, got := from(src)
		results = append(results, got)
	}
	want := []string{"srv1", "srv1", "refused", "srv1", "refused"}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("connections from .1, .1, .1, .2, .2 (-want +got):\n%s", diff)
	}
	if s, l := refused(refusedSourceLimit), refused(refusedListenerLimit); s != 1 || l != 1 {
		t.Errorf("refused: source-limit %v, listener-limit %v; want 1 and 1", s, l)
	}
	if got := udpAsk(t, call, "hello"); got != "srv1" {
		t.Errorf("UDP call answered by %q, want srv1", got)
	}
	if first != nil {
		first.Close()
	}
	eventually(t, "a connection after one ended", func() bool {
		_, got := from("127.0.0.2")
		return got == "srv1"
	})
}
