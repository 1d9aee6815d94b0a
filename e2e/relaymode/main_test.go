// Package relaymode runs Pier's relay end to end in the lab: the real
// pier-controller, pier-speaker (--local-vip) and pier-relay binaries on
// three nodes, a real control plane, calling-server stand-ins (`pier-lab
// echo -name`) on backend hosts of the L2 segment, and a client behind the
// router that reaches them through the Relay's announced address.
package relaymode

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// bins holds the binaries built once for the package's tests.
var bins map[string]string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard()) // the test's API clients log nothing worth reading
	dir, err := os.MkdirTemp("", "pier-relaymode-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bins, err = kubelab.BuildBinaries(dir, "pier-controller", "pier-speaker", "pier-relay", "pier-lab"); err != nil {
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
