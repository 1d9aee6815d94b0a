package podlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// CreatePoolCallService (idempotent) exposes Deployment app=backend in ns
// as LoadBalancer Service name (8443/TCP, 16384/UDP) asking for an
// address of pool (annotation pier.dev/address-pool), and returns its
// IPv4 address once Pier has assigned it.
func (e *Env) CreatePoolCallService(ctx context.Context, ns, name, backend, pool string) (netip.Addr, error) {
	svc := callService(ns, backend)
	svc.Name = name
	svc.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: pool}
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	if err := e.createService(ctx, svc); err != nil {
		return netip.Addr{}, err
	}
	return e.WaitServiceAddress(ctx, ns, name)
}

// StopFRR ends the zebra and bgpd of f (SIGTERM, through the pid files
// StartFRR had them write), waits until they are gone and removes the
// instance's run directory. zebra removes the routes it installed on the
// router as it ends.
func StopFRR(f *kubelab.FRR) error {
	run := filepath.Join("/var/run/frr", f.Name)
	var errs []error
	for _, d := range []string{"bgpd", "zebra"} {
		if err := stopPidFile(filepath.Join(run, d+".pid")); err != nil {
			errs = append(errs, fmt.Errorf("stop %s of %s: %w", d, f.Name, err))
		}
	}
	f.Close()
	return errors.Join(errs...)
}

// stopPidFile sends SIGTERM to the process in pidFile and waits up to ten
// seconds for it to end, then kills it.
func stopPidFile(pidFile string) error {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pid file %s: %q", pidFile, b)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), nil
	})
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("pid %d still running 10s after SIGTERM; killed", pid)
	}
	return nil
}
