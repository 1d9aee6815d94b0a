package lab

import (
	"testing"
	"time"

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

// Poll calls f, sleeping every between calls, until it returns nil; it
// fails t with f's last error once within has passed.
func Poll(t testing.TB, what string, every, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(every)
	}
}
