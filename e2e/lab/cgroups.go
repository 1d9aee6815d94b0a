package lab

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the machine's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// RemoveCgroups kills every process in the cgroups named name (a
// top-level cgroup, as a lab node's kubelet uses for its Pods) in every
// hierarchy, then removes them, deepest first. A lab node's cgroups are
// named after its namespace, so Clean finds those of a dead lab.
func RemoveCgroups(name string) {
	hierarchies, _ := os.ReadDir(cgroupRoot)
	for range 3 {
		for _, h := range hierarchies {
			killTree(filepath.Join(cgroupRoot, h.Name(), name))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, h := range hierarchies {
		removeTree(filepath.Join(cgroupRoot, h.Name(), name))
	}
}

func killTree(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}

func removeTree(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(dirs[i])
	}
}

// staleCgroups returns the top-level cgroups of labs whose owner is gone
// (all of them with all).
func staleCgroups(all bool) []string {
	var names []string
	entries, _ := os.ReadDir(filepath.Join(cgroupRoot, "pids"))
	for _, e := range entries {
		m := nsRE.FindStringSubmatch(e.Name())
		if e.IsDir() && m != nil && (all || !ownerAlive(m[1])) {
			names = append(names, e.Name())
		}
	}
	return names
}

// KillShims kills the containerd shims serving the containerd whose
// socket path contains dir (a pods lab node's directory).
func KillShims(dir string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cmd)
		if strings.Contains(s, "containerd-shim") && strings.Contains(s, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
