// Package prereq decides what a test does when the machine lacks something it
// needs (root, a tool, the control-plane binaries): outside CI it skips with a
// loud reason; in CI (CI=true) it fails, because there a skipped test would be
// counted as a pass it never earned.
package prereq

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI, where nothing may be skipped.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Missing stops the test for a missing prerequisite: Fatal in CI, Skip
// elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("PREREQUISITE MISSING IN CI (a test that must run): %s", msg)
	}
	t.Skipf("SKIPPED, PREREQUISITE MISSING: %s (run `make test` as root to run it; CI fails instead of skipping)", msg)
}

// Unit reports whether this is a unit run (make unit: PIER_UNIT=1), which
// leaves out every test that needs root or a control plane. CI runs make
// test, where Unit is false.
func Unit() bool {
	v := strings.ToLower(os.Getenv("PIER_UNIT"))
	return v == "true" || v == "1"
}

// Lab stops a test that needs a lab (root, namespaces, a control plane) in
// a unit run; elsewhere it does nothing.
func Lab(t testing.TB, needs string) {
	t.Helper()
	if Unit() {
		t.Skipf("make unit leaves this out: it needs %s (make test runs it)", needs)
	}
}

// Root requires the test to run as root (network namespaces, raw sockets).
// A unit run leaves it out even as root.
func Root(t testing.TB) {
	t.Helper()
	Lab(t, "root")
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// Tools requires each named program to be on PATH.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, "needs %q on PATH (installed by hack/deps.sh)", n)
		}
	}
}
