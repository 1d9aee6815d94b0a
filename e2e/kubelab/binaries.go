package kubelab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pier-lb/pier/e2e/prereq"
)

// BuildBinaries builds Pier's commands (names under cmd/) into dir, for
// scenarios that run the real binaries in the lab, and returns their paths.
func BuildBinaries(dir string, names ...string) (map[string]string, error) {
	paths := map[string]string{}
	for _, name := range names {
		path := filepath.Join(dir, name)
		out, err := exec.Command("go", "build", "-o", path, "github.com/pier-lb/pier/cmd/"+name).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
		paths[name] = path
	}
	return paths, nil
}

// Binaries are commands built once for all the tests of a package.
type Binaries map[string]string

// RunWithBinaries is a TestMain body: it builds the named commands into a
// temporary directory, stores their paths in *into, runs the tests and
// removes the directory. It returns the exit code for os.Exit.
func RunWithBinaries(m *testing.M, into *Binaries, names ...string) int {
	if prereq.Unit() {
		return m.Run() // every lab test skips; building would be wasted
	}
	dir, err := os.MkdirTemp("", "pier-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	paths, err := BuildBinaries(dir, names...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*into = paths
	return m.Run()
}

// Path is the built command name; it fails t when name was not built.
func (b Binaries) Path(t testing.TB, name string) string {
	t.Helper()
	prereq.Lab(t, "Pier's binaries")
	if b[name] == "" {
		t.Fatalf("%s not built", name)
	}
	return b[name]
}
