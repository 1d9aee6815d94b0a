package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

var nsRE = regexp.MustCompile(`^(pier[0-9a-f]{4})-`)

// Clean removes namespaces left by earlier labs (a lab makes nothing outside
// its namespaces).
// Labs whose owning process is still alive are kept unless all is set. It
// returns the names it removed.
func Clean(all bool) ([]string, error) {
	var removed []string
	var errs []error
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := nsRE.FindStringSubmatch(f[0])
		if m == nil || (!all && ownerAlive(m[1])) {
			continue
		}
		errs = append(errs, removeNamespace(f[0]))
		removed = append(removed, f[0])
	}
	for _, cg := range staleCgroups(all) {
		RemoveCgroups(cg)
		removed = append(removed, "cgroup "+cg)
	}
	removeStaleOwners(all)
	return removed, errors.Join(errs...)
}

// ownerAlive reports whether the process that created the lab still runs.
func ownerAlive(prefix string) bool {
	data, err := os.ReadFile(ownerFile(prefix))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

func removeStaleOwners(all bool) {
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		prefix, ok := strings.CutSuffix(e.Name(), ".pid")
		if ok && (all || !ownerAlive(prefix)) {
			os.Remove(ownerFile(prefix))
		}
	}
}
