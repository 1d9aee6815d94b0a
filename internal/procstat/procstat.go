// Package procstat reads a process's CPU time and memory: for benchmarks
// and tests that measure Pier's processes, or themselves.
package procstat

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// 100 per second on Linux.
const userHZ = 100

// CPU is the user and system CPU time the process pid has used so far.
// Pid 0 or os.Getpid() is this process, read with getrusage (microseconds);
// any other from /proc/<pid>/stat (ticks of 10ms).
func CPU(pid int) (time.Duration, error) {
	if self(pid) {
		return selfCPU()
	}
	return statCPU(pid)
}

// RSS is the process's resident set size in bytes (VmRSS); pid 0 is
// this process.
func RSS(pid int) (int64, error) { return status(pid, "VmRSS") }

// PeakRSS is the process's largest resident set size so far in bytes
// (VmHWM); pid 0 is this process.
func PeakRSS(pid int) (int64, error) { return status(pid, "VmHWM") }

// LiveHeap is this process's heap in use in bytes (runtime HeapInuse)
// right after a garbage collection.
func LiveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

func self(pid int) bool { return pid == 0 || pid == os.Getpid() }

func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

func statCPU(pid int) (time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return parseStat(path, string(data))
}

// parseStat sums utime and stime: the 12th and 13th fields after the
// command's closing parenthesis (the command may hold spaces and
// parentheses itself).
func parseStat(path, s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("%s: %q is not a stat line", path, s)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: utime or stime: %w", path, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

func status(pid int, field string) (int64, error) {
	path := "/proc/self/status"
	if !self(pid) {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return parseStatus(path, string(data), field)
}

// parseStatus is the size field ("VmRSS:   1234 kB") in bytes. A process
// that has exited but is not yet reaped, or a kernel thread, has none.
func parseStatus(path, s, field string) (int64, error) {
	for _, line := range strings.Split(s, "\n") {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}
