package kubelab

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pier-lb/pier/e2e/prereq"
	"github.com/pier-lb/pier/internal/release"
)

// BuildBinaries builds Pier's commands (names under cmd/) into dir, for
// scenarios that run the real binaries in the lab, and returns their paths.
func BuildBinaries(dir string, names ...string) (map[string]string, error) {
	root, err := release.Root()
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	pkgs := make([]string, len(names))
	for i, name := range names {
		pkgs[i] = "./cmd/" + name
		paths[name] = filepath.Join(dir, name)
	}
	return paths, release.Build(root, dir, "", pkgs...)
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
