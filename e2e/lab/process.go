package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program running inside a host, in a process group of its own
// that dies with the lab (and with the process that made the lab).
type Process struct {
	Host *Host
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	err  error
}

// Command prepares name with args to run inside the host (`ip netns exec`).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// Run runs a command inside the host to completion and returns its combined
// output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v in %s: %w: %s", name, args, h.Name, err, out)
	}
	return string(out), nil
}

// Start runs a long-lived program inside the host. Its output is kept (see
// Output); the lab stops it on Close.
func (h *Host) Start(name string, args ...string) (*Process, error) {
	p := &Process{Host: h, out: &SyncBuffer{}, done: make(chan struct{})}
	p.cmd = h.Command(context.Background(), name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, h.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	h.lab.track(p)
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop sends SIGTERM, waits up to two seconds, then SIGKILL, and returns the
// exit error.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// SyncBuffer collects a process's output: safe to read while the process
// writes to it from its stdout and stderr pipes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitOutput waits until the process has printed s, exits, or ctx ends.
func (p *Process) WaitOutput(ctx context.Context, s string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.cmd.Args[4], p.err, s, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("wait for %q from %s: %w; output:\n%s", s, p.cmd.Args[4], ctx.Err(), p.Output())
		case <-tick.C:
		}
	}
}

// OutputTail returns the last n lines the process has written.
func (p *Process) OutputTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
