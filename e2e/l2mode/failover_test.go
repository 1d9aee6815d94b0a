package l2mode

import (
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// failover kills the owner of addr (SIGKILL and link down, or SIGTERM) and
// returns the gap until another node answers, and which node.
func failover(t testing.TB, env *kubelab.Env, p *prober, addr netip.Addr, graceful bool) (time.Duration, int) {
	t.Helper()
	oldMAC := waitARP(t, env, addr, "the owner", func(string) bool { return true })
	owner := nodeByMAC(t, env, oldMAC)
	killed := time.Now()
	if graceful {
		if err := env.Speakers[owner].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := env.Speakers[owner].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := env.Site.Nodes[owner].SetLink("eth1", false); err != nil {
			t.Fatal(err)
		}
	}
	var got reply
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var ok bool
		got, ok = p.firstAfter(killed, oldMAC)
		return ok, nil
	})
	if err != nil {
		t.Fatalf("nobody took %s over from node%d", addr, owner+1)
	}
	return got.at.Sub(killed), nodeByMAC(t, env, got.mac)
}

func TestFailover(t *testing.T) {
	env := up(t, kubelab.Options{Nodes: 3, SpeakerArgs: []string{"--local-vip"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addrs, err := env.CreateDemoService(ctx, "calls")
	if err != nil {
		t.Fatal(err)
	}
	env.StartEcho(t, binary(t, "pier-lab"), ":8443", ":16384")
	v4 := addrs[0]
	p := startProber(t, env.Site.Router, "eth1", v4, 10*time.Millisecond)

	t.Run("SIGKILL and link down", func(t *testing.T) {
		gap, next := failover(t, env, p, v4, false)
		t.Logf("node%d took %s over %v after the owner was killed and its link cut", next+1, v4, gap.Round(time.Millisecond))
		kubelab.Reach(t, env.Site.Client, "tcp", netip.AddrPortFrom(v4, 8443))
		kubelab.Reach(t, env.Site.Client, "udp", netip.AddrPortFrom(v4, 16384))
	})
	t.Run("SIGTERM hands over at once", func(t *testing.T) {
		oldMAC := waitARP(t, env, v4, "the owner", func(string) bool { return true })
		start := time.Now()
		gap, next := failover(t, env, p, v4, true)
		first, _ := p.firstAfter(start, oldMAC)
		time.Sleep(time.Second) // past the leaving node's grace
		// The leaving node stops answering as soon as its successor
		// announces the address: no request is answered by both, but the
		// one in flight as the successor took over.
		overlap := p.countFrom(first.at, oldMAC)
		t.Logf("node%d took %s over %v after SIGTERM; the old owner answered %d requests (every 10 ms) after that", next+1, v4, gap.Round(time.Millisecond), overlap)
		if overlap > 2 {
			t.Errorf("the old owner answered %d requests after the new one, want at most the one in flight", overlap)
		}
		kubelab.Reach(t, env.Site.Client, "tcp", netip.AddrPortFrom(v4, 8443))
	})
}
