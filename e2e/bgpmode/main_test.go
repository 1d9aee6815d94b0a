// Package bgpmode runs Pier's BGP mode end to end in the lab: the real
// pier-controller and pier-speaker binaries, a real control plane and a real
// FRR router that forwards a client's traffic to the nodes.
package bgpmode

import (
	"os"
	"testing"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// bins holds the binaries built once for the package's tests.
var bins kubelab.Binaries

func TestMain(m *testing.M) {
	os.Exit(kubelab.RunWithBinaries(m, &bins, "pier-controller", "pier-speaker", "pier-lab"))
}

func binary(t testing.TB, name string) string { return bins.Path(t, name) }
