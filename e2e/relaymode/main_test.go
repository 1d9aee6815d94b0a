// Package relaymode runs Pier's relay end to end in the lab: the real
// pier-controller, pier-speaker and pier-relay binaries on three nodes, a
// real control plane, calling-server stand-ins (`pier-lab echo -name`) on
// backend hosts of the L2 segment, and a client behind the router that
// reaches them through the Relay's announced address. Most tests run the
// speakers with --local-vip (the address on the announcing node, no
// kube-proxy); kubeproxy_test.go runs real kube-proxy instead.
package relaymode

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// bins holds the binaries built once for the package's tests.
var bins kubelab.Binaries

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // the test's API clients log nothing worth reading
	os.Exit(kubelab.RunWithBinaries(m, &bins, "pier-controller", "pier-speaker", "pier-relay", "pier-lab"))
}

func binary(t testing.TB, name string) string { return bins.Path(t, name) }
