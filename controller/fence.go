package controller

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// LeaseFence is the leader Lease lock with a record of this replica's last
// renewal, so that a leader that was frozen (a stopped process, a paused
// VM, a long GC) does not write after a standby may have taken over.
//
// A standby takes the Lease over only after it has seen the record
// unchanged for the lease duration; our renewal wrote that record no
// earlier than it was started. So while less than validFor (the renew
// deadline, shorter than the lease duration) has passed on the monotonic
// clock since a renewal of ours started, no other replica leads.
type LeaseFence struct {
	resourcelock.Interface
	clock    clock.PassiveClock
	validFor time.Duration

	mu      sync.Mutex
	renewed time.Time // when our last successful renewal started; zero: none
	holder  string    // the holder in the Lease as last read or written
}

// NewLeaseFence wraps lock. validFor must be shorter than the lease
// duration by at least the time a write may take.
func NewLeaseFence(lock resourcelock.Interface, validFor time.Duration, clk clock.PassiveClock) *LeaseFence {
	return &LeaseFence{Interface: lock, clock: clk, validFor: validFor}
}

// Create takes the Lease for the first time.
func (f *LeaseFence) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return f.record(ler, func() error { return f.Interface.Create(ctx, ler) })
}

// Get reads the Lease. A record naming another holder means this replica
// no longer leads, whatever it last wrote.
func (f *LeaseFence) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	ler, raw, err := f.Interface.Get(ctx)
	if err != nil {
		return ler, raw, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holder = ler.HolderIdentity
	if f.holder != f.Identity() {
		f.renewed = time.Time{}
	}
	return ler, raw, nil
}

// Update renews (or takes over, or releases) the Lease. A release writes
// only while the Lease last read is ours: client-go's release reads the
// Lease and writes an empty holder without comparing whose it is, so a
// leader thawed after a standby took over would free the new leader's
// Lease, and a third replica would lead beside it.
func (f *LeaseFence) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity == "" && !f.lastReadOurs() {
		return nil // renewed is zero already: set so with holder
	}
	return f.record(ler, func() error { return f.Interface.Update(ctx, ler) })
}

func (f *LeaseFence) lastReadOurs() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holder == f.Identity()
}

func (f *LeaseFence) record(ler resourcelock.LeaderElectionRecord, write func() error) error {
	start := f.clock.Now()
	err := write()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		return err
	}
	f.holder = ler.HolderIdentity
	f.renewed = time.Time{} // released, or written for another
	if ler.HolderIdentity == f.Identity() {
		f.renewed = start
	}
	return nil
}

// Check returns nil while this replica surely leads: its last renewal
// started less than validFor ago.
func (f *LeaseFence) Check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.renewed.IsZero() {
		return fmt.Errorf("not the leader: lease %s not held", f.Describe())
	}
	if since := f.clock.Since(f.renewed); since >= f.validFor {
		return fmt.Errorf("not surely the leader: lease %s last renewed %v ago (valid for %v)", f.Describe(), since.Round(time.Millisecond), f.validFor)
	}
	return nil
}

// newLeaseLock makes the Lease lock as controller-runtime would (identity
// host name plus a UUID, API calls bounded by half the renew deadline),
// for a LeaseFence to wrap.
func newLeaseLock(cfg *rest.Config, ns, name string, renewDeadline time.Duration) (resourcelock.Interface, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("leader lease identity: %w", err)
	}
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	cfg.Timeout = max(renewDeadline/2, time.Second)
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	coord, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return resourcelock.New(resourcelock.LeasesResourceLock, ns, name, core, coord,
		resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())})
}
