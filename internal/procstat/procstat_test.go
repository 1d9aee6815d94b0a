package procstat

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// noPid is above the kernel's largest pid_max (2^22): no process has it.
const noPid = 1 << 30

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       time.Duration
		ok         bool
	}{
		{"plain", "42 (pier-speaker) S 1 42 42 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0 100 0 0", 3250 * time.Millisecond, true},
		{"command with spaces and parentheses", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, true},
		{"cut short", "7 (x) R 1 7 7", 0, false},
		{"no command", "garbage", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 4 0 0", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat("stat", tc.line)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseStat (-want +got):\n%s", diff)
			}
			if (err == nil) != tc.ok {
				t.Errorf("error %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	const status = "Name:\tpier\nVmPeak:\t  20000 kB\nVmHWM:\t    9000 kB\nVmRSS:\t    8000 kB\nThreads:\t9\n"
	for _, tc := range []struct {
		name, status, field string
		want                int64
		ok                  bool
	}{
		{"VmRSS", status, "VmRSS", 8000 << 10, true},
		{"VmHWM", status, "VmHWM", 9000 << 10, true},
		{"zombie: no sizes", "Name:\tpier\nState:\tZ (zombie)\n", "VmRSS", 0, false},
		{"not a number", "VmRSS:\tmany kB\n", "VmRSS", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus("status", tc.status, tc.field)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseStatus (-want +got):\n%s", diff)
			}
			if (err == nil) != tc.ok {
				t.Errorf("error %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestSelf reads this process: through getrusage (pid 0) and through
// /proc/<pid>/stat (statCPU, the path for other processes), before and
// after some work. Only growth is checked, not how fast.
func TestSelf(t *testing.T) {
	self0, stat0 := cpus(t)
	busy()
	self1, stat1 := cpus(t)
	if self1 <= self0 || stat1 <= stat0 {
		t.Errorf("CPU after work: getrusage %v -> %v, /proc stat %v -> %v; want both to grow", self0, self1, stat0, stat1)
	}
	if self0 <= 0 || stat0 <= 0 {
		t.Errorf("CPU so far: getrusage %v, /proc stat %v; want > 0", self0, stat0)
	}

	rss, err := RSS(0)
	if err != nil || rss <= 0 {
		t.Errorf("RSS(0) = %d, %v; want > 0", rss, err)
	}
	peak, err := PeakRSS(os.Getpid())
	if err != nil || peak < rss {
		t.Errorf("PeakRSS = %d, %v; want at least the RSS read before, %d", peak, err, rss)
	}
}

func cpus(t *testing.T) (self, stat time.Duration) {
	t.Helper()
	self, err := CPU(0)
	if err != nil {
		t.Fatal(err)
	}
	if stat, err = statCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	return self, stat
}

// busy hashes 256 MiB: tenths of a second of CPU, many 10ms ticks.
func busy() {
	buf := make([]byte, 1<<20)
	h := sha256.New()
	for range 256 {
		h.Write(buf)
	}
	h.Sum(nil)
}

func TestNoProcess(t *testing.T) {
	if _, err := CPU(noPid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CPU(no process): %v, want not exist", err)
	}
	if _, err := RSS(noPid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RSS(no process): %v, want not exist", err)
	}
}

func TestLiveHeap(t *testing.T) {
	if h := LiveHeap(); h <= 0 {
		t.Errorf("LiveHeap() = %d, want > 0", h)
	}
}
