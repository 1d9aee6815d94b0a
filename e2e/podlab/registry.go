package podlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// registry is a Docker distribution registry (Debian's docker-registry) on
// loopback in the root namespace, published on the lab's management network
// so that nodes pull from it and from nothing else, as on an air-gapped
// site. Tests push to it on loopback.
type registry struct {
	cmd   *exec.Cmd
	done  chan struct{}
	local string // 127.0.0.1:port, where tests push
	log   string
}

func startRegistry(ctx context.Context, dir string) (*registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: %q}
  delete: {enabled: true}
http:
  addr: %s
`, filepath.Join(dir, "registry-data"), addr)
	path := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	r := &registry{local: addr, log: filepath.Join(dir, "registry.log"), done: make(chan struct{})}
	f, err := os.Create(r.log)
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command("docker-registry", "serve", path)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start registry: %w", err)
	}
	go func() { _ = r.cmd.Wait(); f.Close(); close(r.done) }()
	if err := r.waitReady(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *registry) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-r.done:
			data, _ := os.ReadFile(r.log)
			return false, fmt.Errorf("registry exited: %s", data)
		default:
		}
		resp, err := hc.Get("http://" + r.local + "/v2/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (r *registry) Close() error {
	if r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	return nil
}
