package relaymode

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/relay/agent"
)

// TestRelayRestartDuringAPIOutage: node X loses its management link (the
// API server becomes unreachable from it), its relay is SIGKILLed and
// started again: it serves the Relays it saved in its state dir, and a flow
// through X's own address reaches the same server as before. Once the link
// is back the API view replaces the saved one.
func TestRelayRestartDuringAPIOutage(t *testing.T) {
	s := up(t)
	const x = 1
	node := s.env.Site.Nodes[x]
	cv4, _ := clientAddrs()
	udpDst := netip.AddrPortFrom(nodeAddr(x), 16384)
	tcpDst := netip.AddrPortFrom(nodeAddr(x), 8443)
	waitStateFile(t, s.env.RelayStateDir(x), "calls", "calls-pp")

	f := newFlow(t, s.env.Site.Client, netip.AddrPortFrom(cv4, 21000))
	before := f.mustAsk(t, udpDst, "before")
	if want := owner(t, f.src, servers...); before.Name != want {
		t.Fatalf("udp %s from %s: reached %s, want the Maglev owner %s", udpDst, f.src, before.Name, want)
	}

	must(t, node.SetLink("mgmt0", false))
	linkUp := false
	t.Cleanup(func() {
		if !linkUp {
			_ = node.SetLink("mgmt0", true)
		}
	})
	cut := time.Now()
	must(t, s.relays[x].Signal(syscall.SIGKILL))
	<-s.relays[x].Done()
	p, err := node.Start(binary(t, "pier-relay"), "--kubeconfig", s.env.NodeKubeconfig,
		"--namespace", kubelab.PierNamespace, "--node-name", node.Name, "--metrics-addr", "0",
		"--state-dir", s.env.RelayStateDir(x), "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	s.relays[x] = p
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "API unreachable, serving 2 relays from saved state"); err != nil {
		t.Fatalf("restarted relay on %s: %v", node.Name, err)
	}

	after := f.mustAsk(t, udpDst, "after")
	served := time.Since(cut)
	if after.Name != before.Name {
		t.Errorf("udp %s from %s: reached %s after the restart, %s before", udpDst, f.src, after.Name, before.Name)
	}
	w, local := mustTCP(t, s.env.Site.Client, tcpDst)
	if want := owner(t, local, servers...); w.Name != want {
		t.Errorf("tcp %s from %s: reached %s, want the Maglev owner %s", tcpDst, local, w.Name, want)
	}
	if strings.Contains(p.Output(), "API view synced") {
		t.Fatalf("the restarted relay reached the API server with %s's management link down", node.Name)
	}
	t.Logf("%s: relay killed and restarted with the API unreachable, flow %s on %s again %v after the cut",
		node.Name, f.src, after.Name, served.Round(time.Millisecond))

	must(t, node.SetLink("mgmt0", true))
	linkUp = true
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := p.WaitOutput(ctx2, "API view synced"); err != nil {
		t.Fatalf("relay on %s after the link came back: %v", node.Name, err)
	}
	if w := f.mustAsk(t, udpDst, "synced"); w.Name != before.Name {
		t.Errorf("udp %s from %s: reached %s once synced, %s before", udpDst, f.src, w.Name, before.Name)
	}
	s.waitLeases(t, "calls", len(s.env.Site.Nodes))
}

// waitStateFile waits until the relay's state file names every relay.
func waitStateFile(t testing.TB, dir string, relays ...string) {
	t.Helper()
	var data []byte
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		data, _ = os.ReadFile(filepath.Join(dir, agent.StateFile))
		for _, r := range relays {
			if !strings.Contains(string(data), `"name":"`+r+`"`) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("state file in %s: %q, want relays %v", dir, data, relays)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
