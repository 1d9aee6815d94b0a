package l2mode

import (
	"os"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// outage is how long the nodes lose the control plane; the issue asks for
// 60 s. PIER_OUTAGE shortens it for quick local runs.
func outage() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("PIER_OUTAGE")); err == nil {
		return d
	}
	return 60 * time.Second
}

// With every node's management link down (the API server unreachable) the
// announcements go on; a speaker restarted during the outage announces
// again from what it saved on the node.
func TestAPIOutage(t *testing.T) {
	t.Parallel()
	env := up(t, kubelab.Options{Nodes: 3})
	addr := createService(t, env, "edge", noChange)
	p := startProber(t, env.Site.Router, "eth1", addr, 20*time.Millisecond)
	ownerMAC := waitProbe(t, p, time.Now(), "", allMACs(t, env))
	owner := nodeByMAC(t, env, ownerMAC)
	waitStatus(t, env, "edge", env.Site.Nodes[owner].Name) // the owner has saved its state

	for _, n := range env.Site.Nodes {
		must(t, n.SetLink("mgmt0", false))
	}
	cut := time.Now()
	d := outage()
	time.Sleep(d / 2) // the outage itself is the scenario, not a timing assertion

	must(t, env.Speakers[owner].Signal(syscall.SIGKILL))
	<-env.Speakers[owner].Done()
	if _, err := env.StartSpeaker(owner); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitProbe(t, p, restarted, "", []string{ownerMAC})
	t.Logf("node%d's speaker, restarted %v into the outage, answered again %v later",
		owner+1, restarted.Sub(cut).Round(time.Second), time.Since(restarted).Round(time.Millisecond))
	time.Sleep(time.Until(cut.Add(d)))

	gaps := p.gapsSince(cut, 300*time.Millisecond)
	t.Logf("replies during the %v outage: %d, gaps over 300 ms: %v", d, p.countSince(cut), gaps)
	if len(gaps) > 1 { // the restart itself may leave one
		t.Errorf("announcements stopped during the outage: gaps %v", gaps)
	}
	for _, n := range env.Site.Nodes {
		must(t, n.SetLink("mgmt0", true))
	}
	createService(t, env, "after-outage", noChange) // the control plane works again
}

func noChange(*corev1.Service) {}

func allMACs(t testing.TB, env *kubelab.Env) []string {
	var out []string
	for _, n := range env.Site.Nodes {
		out = append(out, macOf(t, n, "eth1"))
	}
	return out
}
