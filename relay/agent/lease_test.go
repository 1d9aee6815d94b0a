package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestLeases(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	l := newLeases(cs.CoordinationV1().Leases("pier-system"), "node1", 30*time.Second, 10*time.Second,
		clk, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()))
	k := Key{Namespace: "voice", Name: "calls"}
	name := v1alpha1.RelayLeaseName("voice", "calls", "node1")
	get := func() *coordinationv1.Lease {
		lease, err := cs.CoordinationV1().Leases("pier-system").Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return lease
	}

	l.Set([]Key{k})
	l.sync(ctx)
	lease := get()
	if lease == nil {
		t.Fatal("no Lease for a served Relay")
	}
	if *lease.Spec.HolderIdentity != "node1" || *lease.Spec.LeaseDurationSeconds != 30 ||
		lease.Labels[v1alpha1.LabelRelayNamespace] != "voice" || lease.Labels[v1alpha1.LabelRelayName] != "calls" {
		t.Errorf("lease %+v", lease)
	}
	created := lease.Spec.RenewTime.Time

	clk.Step(5 * time.Second)
	l.sync(ctx)
	if got := get().Spec.RenewTime.Time; !got.Equal(created) {
		t.Errorf("renewed after 5s (%v), want every 10s", got)
	}
	clk.Step(5 * time.Second)
	l.sync(ctx)
	if got := get().Spec.RenewTime.Time; !got.Equal(clk.Now()) {
		t.Errorf("renew time %v after 10s, want %v", got, clk.Now())
	}

	l.Set(nil)
	l.sync(ctx)
	if get() != nil {
		t.Error("Lease kept for a Relay no longer served")
	}

	// Without the right to delete, the Lease is left expired instead.
	l.Set([]Key{k})
	l.sync(ctx)
	cs.PrependReactor("delete", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, name, nil)
	})
	l.Set(nil)
	l.sync(ctx)
	lease = get()
	if lease == nil {
		t.Fatal("the Lease went although deleting is forbidden")
	}
	if exp := lease.Spec.RenewTime.Add(30 * time.Second); !exp.Before(clk.Now()) {
		t.Errorf("Lease left live until %v (now %v), want expired", exp, clk.Now())
	}
}
