package controller_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/controller"
)

// frozenLock stands for a leader whose process was stopped: while frozen,
// reads and writes of the Lease hang until their deadline, as they would
// for a process that cannot run.
type frozenLock struct {
	resourcelock.Interface
	frozen atomic.Bool
	hung   chan struct{} // gets a value when a read hangs
}

func (l *frozenLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	if l.frozen.Load() {
		return nil, nil, l.hang(ctx)
	}
	return l.Interface.Get(ctx)
}

func (l *frozenLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if l.frozen.Load() {
		return l.hang(ctx)
	}
	return l.Interface.Update(ctx, ler)
}

func (l *frozenLock) hang(ctx context.Context) error {
	select {
	case l.hung <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// A leader that could not renew while a standby took its Lease over gives
// the Lease up when it stops (controller-runtime's release on cancel), and
// that must not free the Lease the standby now holds: a third replica would
// take it and lead beside the standby. Found by
// TestStaleLeaderNeverMovesAddresses: Services moved while two replicas
// wrote for a few seconds.
func TestThawedLeaderLeavesTheNewLeaseAlone(t *testing.T) {
	e := newEnv(t)
	cs := kubernetes.NewForConfigOrDie(e.cluster.Config)
	const name = "thawed"
	lease, err := resourcelock.New(resourcelock.LeasesResourceLock, pierNS, name,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: "old-leader"})
	if err != nil {
		t.Fatal(err)
	}
	lock := &frozenLock{Interface: lease, hung: make(chan struct{}, 1)}
	fence := controller.NewLeaseFence(lock, 2*time.Second, clock.RealClock{})
	led := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            fence,
		LeaseDuration:   3 * time.Second,
		RenewDeadline:   2 * time.Second,
		RetryPeriod:     300 * time.Millisecond,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(led) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { defer close(ran); le.Run(context.Background()) }()
	<-led
	lock.frozen.Store(true)
	<-lock.hung

	// The standby takes the Lease over while the leader cannot run.
	leases := cs.CoordinationV1().Leases(pierNS)
	ctx := context.Background()
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec = coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To("standby"),
		LeaseDurationSeconds: ptr.To[int32](3),
		AcquireTime:          &metav1.MicroTime{Time: time.Now()},
		RenewTime:            &metav1.MicroTime{Time: time.Now()},
	}
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lock.frozen.Store(false) // thawed: reads reach the API server again
	<-ran                    // the renewal timed out; the elector released and stopped

	l, err = leases.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != "standby" {
		t.Errorf("after the old leader stopped the Lease names %q, want the standby", got)
	}
	if err := fence.Check(); err == nil {
		t.Error("the old leader's fence still holds")
	}
}
