package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/pier-lb/pier/e2e/prereq"
)

// ForTest starts a control plane for t and stops it when t ends, printing the
// tail of each component's log first if t failed. Missing binaries skip the
// test outside CI and fail it in CI.
func ForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	prereq.Lab(t, "a kube-apiserver and etcd")
	c, err := Start(context.Background(), opts)
	if errors.Is(err, ErrBinariesMissing) {
		prereq.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", c.LogTails(60))
		}
		c.Stop()
	})
	return c
}
