package kubelab

import (
	"fmt"
	"os/exec"
	"path/filepath"
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
