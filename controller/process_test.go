package controller_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/internal/procstat"
	"github.com/pier-lb/pier/internal/release"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// controllerBinary builds cmd/pier-controller once per test binary.
func controllerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pier-controller-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pier-controller")
		root, err := release.Root()
		if err == nil {
			err = release.Build(root, dir, "", "./cmd/pier-controller")
		}
		buildErr = err
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a pier-controller process.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// running reports whether the process has not exited (a leader that
// lost its Lease exits).
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (e *env) runController(t testing.TB, args ...string) *proc {
	t.Helper()
	base := []string{"--kubeconfig", e.cluster.Kubeconfig, "--namespace", pierNS, "--metrics-addr", "0", "--health-addr", "0", "--webhook=false"}
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(controllerBinary(t), append(base, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("pier-controller %d output:\n%s", p.cmd.Process.Pid, p.output())
		}
	})
	return p
}

// usage reads the process's CPU seconds and peak resident memory.
func (p *proc) usage(tb testing.TB) (cpu time.Duration, peakRSS int64) {
	return pidUsage(tb, p.cmd.Process.Pid)
}

// pidUsage reads a process's CPU seconds and peak resident memory.
func pidUsage(tb testing.TB, pid int) (cpu time.Duration, peakRSS int64) {
	tb.Helper()
	cpu, err := procstat.CPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	if peakRSS, err = procstat.PeakRSS(pid); err != nil {
		tb.Fatal(err)
	}
	return cpu, peakRSS
}
