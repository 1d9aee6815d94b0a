package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestPoolEdits(t *testing.T) {
	e := newEnv(t)
	e.create(pool("edge", "198.51.100.200-198.51.100.201"))
	e.startController()
	e.create(service("default", "first"))
	e.create(service("default", "second"))
	first, second := e.waitAssigned("default", "first"), e.waitAssigned("default", "second")
	e.create(service("default", "third")) // the pool has two addresses
	if note := e.waitEvent("default", "third", "PoolExhausted"); !strings.Contains(note, "edge") {
		t.Errorf("third: event %q does not name the pool", note)
	}

	t.Run("usage in pool status", func(t *testing.T) {
		p := e.waitPool("edge", func(p *v1alpha1.IPAddressPool) bool { return p.Status.AssignedIPv4 == "2" })
		if diff := cmp.Diff([]string{"2", "0"}, []string{p.Status.AssignedIPv4, p.Status.AvailableIPv4}); diff != "" {
			t.Errorf("assigned/available (-want +got):\n%s", diff)
		}
	})
	t.Run("growing the pool serves the waiting Service", func(t *testing.T) {
		e.updatePool("edge", "198.51.100.200-198.51.100.202")
		if got := e.waitAssigned("default", "third"); !cmp.Equal(got, []string{"198.51.100.202"}) {
			t.Errorf("third got %v", got)
		}
	})
	t.Run("shrinking the pool moves nobody", func(t *testing.T) {
		e.updatePool("edge", "198.51.100.202/32")
		note := e.waitEvent("default", "first", "AddressOrphaned")
		if !strings.Contains(note, first[0]) {
			t.Errorf("orphan event %q does not name %s", note, first[0])
		}
		for name, want := range map[string][]string{"first": first, "second": second} {
			if got := e.waitAssigned("default", name); !cmp.Equal(got, want) {
				t.Errorf("%s moved from %v to %v", name, want, got)
			}
		}
	})
	t.Run("an invalid pool is left out, the others stay", func(t *testing.T) {
		// Written straight to the API server: no webhook runs in this test.
		e.create(pool("broken", "198.51.100.300/24"))
		if note := e.waitEventIn(pierNS, "broken", "InvalidPool"); !strings.Contains(note, "spec.addresses[0]") {
			t.Errorf("event %q does not name the field", note)
		}
		e.create(service("default", "fourth", annotateIP("198.51.100.202")))
		e.waitEvent("default", "fourth", "AddressInUse") // 202 is held by third: the valid pools still apply
	})
}

func annotateIP(ip string) func(*corev1.Service) {
	return annotate(v1alpha1.AnnotationLoadBalancerIPs, ip)
}

func (e *env) updatePool(name string, addrs ...string) {
	e.t.Helper()
	// The controller writes the pool's status meanwhile: read again on a
	// conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.IPAddressPool
		if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: pierNS, Name: name}, &p); err != nil {
			return err
		}
		p.Spec.Addresses = addrs
		return e.c.Update(context.Background(), &p)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitPool(name string, cond func(*v1alpha1.IPAddressPool) bool) *v1alpha1.IPAddressPool {
	e.t.Helper()
	var p v1alpha1.IPAddressPool
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: pierNS, Name: name}, &p); err != nil {
			return false, err
		}
		return cond(&p), nil
	})
	if err != nil {
		e.t.Fatalf("pool %s: condition never held; status %+v", name, p.Status)
	}
	return &p
}

// A backlog writes the pool's status at most once a second, not once per
// Service assigned: 300 Services assigned by a controller that starts
// with all of them waiting write the pool no more often than the seconds
// that took (BenchmarkBacklog measures the same at scale).
func TestPoolStatusWritesBounded(t *testing.T) {
	const n = 300
	e := newEnv(t)
	e.create(pool("backlog", "198.18.0.0/20"))
	e.create(&corev1.Namespace{ObjectMeta: metaName("backlog")})
	createMany(t, e, "backlog", n)
	assigned := e.countAssigned(t, "backlog")
	writes := e.countWrites(t, "backlog")
	start := time.Now()
	e.startController()
	assigned.waitFor(t, n)
	e.waitPool("backlog", func(p *v1alpha1.IPAddressPool) bool { return p.Status.AssignedIPv4 == "300" })
	elapsed := time.Since(start)
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return writes.Load() > 0, nil
	})
	if err != nil {
		t.Fatal("the watch saw no write of the pool's status: the test proves nothing")
	}
	if got, most := writes.Load(), int64(elapsed/time.Second)+1; got > most {
		t.Errorf("%d writes of the pool in %v for %d Services, want at most %d (one a second)", got, elapsed, n, most)
	}
}
