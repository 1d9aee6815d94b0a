package kubelab

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
)

// StartEcho runs `pier-lab echo` (echoBin) on every node, listening on
// tcpAddr and udpAddr, and waits until each is ready.
func (e *Env) StartEcho(t testing.TB, echoBin, tcpAddr, udpAddr string) {
	t.Helper()
	for _, n := range e.Site.Nodes {
		p, err := n.Start(echoBin, "echo", "-tcp", tcpAddr, "-udp", udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = p.WaitOutput(ctx, echo.Ready)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Reach retries an echo round trip from h to addr until it works, or fails
// the test after 30 s.
func Reach(t testing.TB, h *lab.Host, network string, addr netip.AddrPort) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		last = echo.RoundTrip(c, h.Dial, network, addr.String())
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s never reached %s over %s: %v", h.Name, addr, network, last)
	}
}
