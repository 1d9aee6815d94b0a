package lab

import (
	"testing"

	"github.com/pier-lb/pier/e2e/prereq"
)

// ForTest returns an empty lab that is removed when t ends. Without root or
// iproute2 the test is skipped (failed under CI=true).
func ForTest(t testing.TB) *Lab {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "ip")
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}
