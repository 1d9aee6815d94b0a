// Package l2mode runs Pier's L2 mode end to end in the lab: the real
// pier-controller and pier-speaker binaries, a real control plane, real ARP
// and NDP over veth, real routers' neighbour tables and real clients.
package l2mode

import (
	"fmt"
	"os"
	"testing"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// bins holds the binaries built once for the package's tests.
var bins map[string]string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pier-l2mode-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bins, err = kubelab.BuildBinaries(dir, "pier-controller", "pier-speaker", "pier-lab"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func binary(t testing.TB, name string) string {
	t.Helper()
	if bins[name] == "" {
		t.Fatalf("%s not built", name)
	}
	return bins[name]
}
