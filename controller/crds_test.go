package controller_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/cluster"
)

// TestRefusesToStartWithoutCRDs: pier-controller on a cluster without
// Pier's CRDs (applied after Pier, or never) exits at once naming what is
// missing, instead of waiting for informers that never sync.
func TestRefusesToStartWithoutCRDs(t *testing.T) {
	e := &env{t: t, cluster: cluster.ForTest(t, cluster.Options{})}
	p := e.runController(t, "--leader-elect=false")
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("pier-controller still running after a minute without CRDs:\n%s", p.output())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	out := p.output()
	for _, want := range []string{"Pier's CRDs are not installed", "ipaddresspools.pier.dev", "relays.pier.dev"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}
