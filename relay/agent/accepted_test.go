package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/lab"
)

// TestRestartKeepsRefusedRelay: a Relay changed into one config refuses
// is served as it was last accepted, by a relay agent that restarts after
// the change too. Before, the accepted Relays lived only in memory: the
// restarted agent refused the Relay and stopped serving it (a bad edit
// plus a node reboot took a working Relay down).
func TestRestartKeepsRefusedRelay(t *testing.T) {
	port := freePort(t)
	r := calls("a", "r", func(r *v1alpha1.Relay) {
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "calls-tcp", Protocol: "TCP", Port: int32(port)}}
	})
	c := fakeAPI(t, &r)
	dir := t.TempDir()
	k := Key{Namespace: "a", Name: "r"}
	bind := netip.MustParseAddr("127.0.0.1")

	first, logs := agentWithState(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	first.restoreAccepted()
	first.reconcile(ctx, c, bind)
	if first.running[k] == nil {
		t.Fatalf("valid Relay not served:\n%s", logs.String())
	}
	cancel()
	first.shutdown()

	var cur v1alpha1.Relay
	mustDo(t, c.Get(context.Background(), client.ObjectKeyFromObject(&r), &cur))
	kernelToken(&cur)
	mustDo(t, c.Update(context.Background(), &cur))

	second, logs := agentWithState(t, dir)
	ctx, cancel = context.WithCancel(context.Background())
	defer func() { cancel(); second.shutdown() }()
	second.restoreAccepted()
	second.reconcile(ctx, c, bind)
	got := second.running[k]
	if got == nil {
		t.Fatalf("after a restart the refused Relay is not served:\n%s", logs.String())
	}
	if want := netip.AddrPortFrom(bind, port); got.cfg.Listeners[0].Addr != want {
		t.Errorf("listener on %s, want the accepted %s", got.cfg.Listeners[0].Addr, want)
	}
}

// TestAcceptedFile: what a previous run accepted comes back as it was;
// an unreadable file is ignored (nothing accepted), never fatal.
func TestAcceptedFile(t *testing.T) {
	r := calls("a", "r")
	want := map[Key]*v1alpha1.Relay{{Namespace: "a", Name: "r"}: &r}
	data, err := encodeAccepted(want)
	mustDo(t, err)
	path := filepath.Join(t.TempDir(), AcceptedFile)
	mustDo(t, os.WriteFile(path, data, 0o600))
	got, err := loadAccepted(path)
	mustDo(t, err)
	if diff := cmp.Diff(r.Spec, got[Key{Namespace: "a", Name: "r"}].Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{`, `[{"namespace":"a"}]`, `[{"namespace":"a","name":"r","extra":1}]`} {
		mustDo(t, os.WriteFile(path, []byte(bad), 0o600))
		if _, err := loadAccepted(path); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if got, err := loadAccepted(filepath.Join(t.TempDir(), "none")); err != nil || len(got) != 0 {
		t.Errorf("no file: %v, %v; want nothing and no error", got, err)
	}
}

// agentWithState is an agent keeping its state in dir, with fake leases.
func agentWithState(t *testing.T, dir string) (*Agent, *lab.SyncBuffer) {
	t.Helper()
	var logs lab.SyncBuffer
	a, err := New(Options{
		Config: &rest.Config{Host: "https://192.0.2.1:6443"}, NodeName: "node1", Namespace: "pier-system",
		StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: prometheus.NewRegistry(),
	})
	mustDo(t, err)
	a.leases = newLeases(fake.NewClientset().CoordinationV1().Leases("pier-system"), "node1", time.Minute, 10*time.Second,
		a.opts.Clock, a.log, a.metrics)
	return a, &logs
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
