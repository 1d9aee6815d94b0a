package l2mode

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

func up(t testing.TB, opts kubelab.Options) *kubelab.Env {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "arping", "ndisc6")
	opts.ControllerBinary = binary(t, "pier-controller")
	opts.SpeakerBinary = binary(t, "pier-speaker")
	// Each node starts its processes in turn: 100 nodes (the scale
	// benchmark) took longer than two minutes on two cores.
	ctx, cancel := context.WithTimeout(context.Background(), max(2*time.Minute, time.Duration(opts.Nodes)*3*time.Second))
	defer cancel()
	env, err := kubelab.Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpStacks(env.Speakers)
			for i, p := range env.Speakers {
				if p != nil {
					t.Logf("speaker node%d output (tail):\n%s", i+1, p.OutputTail(40))
					keepOutput(t, fmt.Sprintf("speaker-node%d", i+1), p.Output())
				}
			}
			t.Logf("controller output (tail):\n%s", env.ControllerProcess().OutputTail(20))
		}
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	})
	for i := range env.Speakers { // tests start from a settled group
		waitRejoined(t, env, i)
	}
	return env
}

// dumpStacks makes the running processes print their goroutines (Go's
// SIGQUIT) into their output, for a look at a speaker that stopped
// reacting, and waits up to 2 s for each to exit.
func dumpStacks(ps []*lab.Process) {
	for _, p := range ps {
		if p != nil && p.Signal(syscall.SIGQUIT) == nil {
			select {
			case <-p.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}
}

// keepOutput saves a failed test's process output in the system's
// temporary directory, whole, for a look after the lab is gone.
func keepOutput(t testing.TB, name, out string) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("pier-%s-%s.log", strings.ReplaceAll(t.Name(), "/", "-"), name))
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Logf("keep %s output: %v", name, err)
		return
	}
	t.Logf("%s output kept in %s", name, path)
}

// waitRejoined waits until node i's speaker has joined every other member.
// Until the group has settled, several nodes may each believe they own an
// address for a moment.
func waitRejoined(t testing.TB, env *kubelab.Env, i int) {
	t.Helper()
	// A hundred speakers starting on two cores take longer to find each
	// other than three.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+time.Duration(len(env.Site.Nodes))*time.Second)
	defer cancel()
	for j, n := range env.Site.Nodes {
		if j == i {
			continue
		}
		if err := env.Speakers[i].WaitOutput(ctx, `"peer":"`+n.Name+`"`); err != nil {
			t.Fatal(err)
		}
	}
}

var macRE = regexp.MustCompile(`(?i)\b([0-9a-f]{2}(:[0-9a-f]{2}){5})\b`)

// ndpMAC solicits addr from h on iface and returns the advertised MAC.
func ndpMAC(ctx context.Context, h *lab.Host, iface string, addr netip.Addr) string {
	out, _ := h.Run(ctx, "ndisc6", "-1", "-r", "2", "-w", "500", addr.String(), iface)
	return strings.ToLower(macRE.FindString(out))
}

// macOf is the MAC of iface in host h.
func macOf(t testing.TB, h *lab.Host, iface string) string {
	t.Helper()
	out, err := h.Run(context.Background(), "cat", "/sys/class/net/"+iface+"/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// waitARP polls until addr answers from the router with a MAC for which
// accept is true, and returns that MAC.
func waitARP(t testing.TB, env *kubelab.Env, addr netip.Addr, what string, accept func(string) bool) string {
	t.Helper()
	var got string
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		macs := kubelab.ARPReplies(ctx, env.Site.Router, "eth1", addr, 1)
		if len(macs) > 0 && accept(macs[0]) {
			got = macs[0]
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%s never answered ARP for %s", what, addr)
	}
	return got
}

// nodeByMAC finds the node whose eth1 has mac.
func nodeByMAC(t testing.TB, env *kubelab.Env, mac string) int {
	t.Helper()
	for i, n := range env.Site.Nodes {
		if macOf(t, n, "eth1") == mac {
			return i
		}
	}
	t.Fatalf("no node has MAC %s", mac)
	return -1
}
