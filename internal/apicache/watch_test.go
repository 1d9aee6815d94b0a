package apicache_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/internal/apicache"
	"github.com/pier-lb/pier/manifests"
)

// TestWatchSaysCRDsMissing: a node agent started before Pier's CRDs waits
// for them saying which are missing (its cache cannot sync, and client-go
// alone only logs failed lists), and syncs once they are applied.
func TestWatchSaysCRDsMissing(t *testing.T) {
	cl := cluster.ForTest(t, cluster.Options{})
	apicache.CRDCheckInterval = 100 * time.Millisecond
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mapper := apicache.Mapper(apicache.Kind{GroupVersion: v1alpha1.GroupVersion, Kind: "Relay", Plural: "relays", Namespaced: true})
	c, err := cache.New(cl.Config, cache.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := func() error { return apicache.RequireCRDs(disc, v1alpha1.GroupVersion, "relays") }
	var logs lab.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Start(ctx)
	synced := make(chan bool, 1)
	go func() {
		synced <- apicache.Watch(ctx, c, []client.Object{&v1alpha1.Relay{}}, func() {}, log, "unreachable", crds)
	}()

	said := func(s string) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) { return strings.Contains(logs.String(), s), nil }
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, said("relays.pier.dev not served")); err != nil {
		t.Fatalf("no log naming the missing CRD: %v\n%s", err, logs.String())
	}
	if n := strings.Count(logs.String(), "waiting for Pier's CRDs"); n != 1 {
		t.Errorf("said %d times, want once while nothing changes:\n%s", n, logs.String())
	}
	if err := manifests.InstallCRDs(ctx, cl.Config); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-synced:
		if !ok {
			t.Fatal("Watch returned false")
		}
	case <-time.After(time.Minute):
		t.Fatalf("cache not synced a minute after the CRDs were installed:\n%s", logs.String())
	}
}
