package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// outOfDescriptors lowers the process's open file limit below any new
// descriptor, so that every new socket fails with EMFILE, until the returned
// function (or the end of the test) restores it.
func outOfDescriptors(t *testing.T) (restore func()) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// A new descriptor takes the lowest free number, which must be below
	// the limit: the limit is the lowest free number.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(f.Fd())
	f.Close()
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restore = func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) }
	t.Cleanup(restore)
	if c, err := net.Dial("tcp", "127.0.0.1:9"); !errors.Is(err, syscall.EMFILE) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("a new socket with the limit lowered: %v, want EMFILE", err)
	}
	return restore
}

// TestOutOfDescriptorsKeepsBackendsUp: a relay out of descriptors cannot
// connect anywhere, which says nothing of its backends. Active checks and
// new TCP connections then fail with EMFILE, and UDP flows get no socket:
// the backends stay up (marking them down dropped every flow, old ones
// too, as no-backend) and the drops count as local-limit.
func TestOutOfDescriptorsKeepsBackendsUp(t *testing.T) {
	a, b := startBackend(t, "a", "127.0.0.1", false), startBackend(t, "b", "127.0.0.1", false)
	r, err := New(Options{Backends: backends(a, b), Listeners: []Listener{
		{Name: "tcp", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcp := r.newTCPServer(r.opts.Listeners[0], slog.New(slog.DiscardHandler), ln)
	udp, err := r.openUDP(r.opts.Listeners[1], slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.close()
	client := netip.MustParseAddrPort("198.51.100.7:40000")

	restore := outOfDescriptors(t)
	for range 3 {
		r.checkAll(context.Background())
	}
	_, _, tcpErr := tcp.dial(context.Background(), client, nil)
	_, udpErr := udp.dial(udp.conns[0], client, udp.local, nil)
	restore()

	for _, be := range r.plane.Load().backends {
		if !be.up.Load() {
			t.Errorf("backend %s marked down while the relay was out of descriptors", be.Name)
		}
	}
	for proto, err := range map[string]error{"tcp": tcpErr, "udp": udpErr} {
		if got := dropReason(err); got != dropLocalLimit {
			t.Errorf("%s new flow out of descriptors: drop reason %s (%v), want %s", proto, got, err, dropLocalLimit)
		}
	}
}

// TestWarnsOfEphemeralPorts: each UDP flow holds a local port, so a flow
// limit above the node's ephemeral ports is a limit the relay cannot
// reach; Run says so.
func TestWarnsOfEphemeralPorts(t *testing.T) {
	lo, hi, err := ephemeralPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flows int
		warn  bool
	}{{hi - lo, false}, {hi - lo + 2, true}} {
		var logs bytes.Buffer
		r, err := New(Options{MaxFlows: tc.flows, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}})
		if err != nil {
			t.Fatal(err)
		}
		r.warnLimits()
		if got := strings.Contains(logs.String(), "ephemeral ports"); got != tc.warn {
			t.Errorf("MaxFlows %d with ports %d-%d: warned %v, want %v; logs:\n%s", tc.flows, lo, hi, got, tc.warn, logs.String())
		}
	}
}
