package podlab

import (
	"strings"
	"testing"
)

// The start script binds exactly the paths the node prepares copies of.
func TestStartScriptBindsHostPaths(t *testing.T) {
	want := "for p in " + strings.Join(hostPaths, " ") + "; do"
	if !strings.Contains(startScript, want) {
		t.Errorf("startScript does not bind hostPaths: want a line %q", want)
	}
}
