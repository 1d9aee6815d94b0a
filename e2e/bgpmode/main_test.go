// Package bgpmode runs Pier's BGP mode end to end in the lab: the real
// pier-controller and pier-speaker binaries, a real control plane and a real
// FRR router that forwards a client's traffic to the nodes.
package bgpmode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bins holds the binaries built once for the package's tests.
var bins = map[string]string{}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pier-bgpmode-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"pier-controller", "pier-speaker", "pier-lab"} {
		path := filepath.Join(dir, name)
		out, err := exec.Command("go", "build", "-o", path, "github.com/pier-lb/pier/cmd/"+name).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			return 1
		}
		bins[name] = path
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
