package podlab_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"

	"github.com/pier-lb/pier/e2e/podlab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// One pods cluster serves every test of the package: bringing up kubelets
// and pushing images takes a minute; the tests install and remove Pier on
// it in turn.
var (
	env    *podlab.Env
	upErr  error
	upOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil && code != 0 && os.Getenv("PIER_PODLAB_HOLD") != "" {
		// For a person to look inside a failed run: kubectl --kubeconfig,
		// crictl against a node's containerd.sock, ip netns exec.
		fmt.Fprintf(os.Stderr, "PIER_PODLAB_HOLD: cluster kept until interrupted: kubeconfig %s, nodes in %s\n", env.Cluster.Kubeconfig, env.Dir)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
	}
	if env != nil {
		_ = env.Close()
	}
	os.Exit(code)
}

// cluster returns the shared cluster or stops t: skipped outside CI when a
// prerequisite is missing, failed otherwise.
func cluster(t testing.TB) *podlab.Env {
	t.Helper()
	prereq.Lab(t, "root, kubelets and containerd")
	upOnce.Do(func() {
		if os.Geteuid() != 0 {
			upErr = fmt.Errorf("%w: needs root", podlab.ErrPrerequisite)
			return
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		env, upErr = podlab.Up(context.Background(), podlab.Options{PierTags: []string{"lab", "lab2"}, Logger: log})
	})
	if errors.Is(upErr, podlab.ErrPrerequisite) {
		prereq.Missing(t, "%v", upErr)
	}
	if upErr != nil {
		t.Fatalf("pods cluster: %v", upErr)
	}
	return env
}
