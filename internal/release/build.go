// Package release builds Pier's commands the one way they ship: static
// linux binaries (no cgo), paths trimmed, symbols stripped. The image and
// every lab that runs the real binaries use it, so the labs test what
// users run and a cold Go cache compiles Pier's dependencies for one
// configuration besides the race-enabled tests, not two.
package release

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ImageCommands are the commands (under cmd/) Pier's image carries.
var ImageCommands = []string{"pier-controller", "pier-speaker", "pier-relay"}

// Build compiles the packages pkgs ("./cmd/pier-speaker") of the module at
// root into dir for GOARCH arch ("" for this machine's).
func Build(root, dir, arch string, pkgs ...string) error {
	if len(pkgs) == 0 {
		return fmt.Errorf("build into %s: no packages", dir)
	}
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if arch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+arch)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// Root is the directory of the module the current directory belongs to.
func Root() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}
