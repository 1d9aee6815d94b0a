package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

// memLock is a resourcelock.Interface in memory whose writes take a set
// time on the clock or fail.
type memLock struct {
	clk  *clocktesting.FakeClock
	took time.Duration
	fail error
	rec  resourcelock.LeaderElectionRecord
}

func (l *memLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	return &l.rec, nil, nil
}
func (l *memLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.Update(ctx, ler)
}
func (l *memLock) Update(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.clk.Step(l.took)
	if l.fail != nil {
		return l.fail
	}
	l.rec = ler
	return nil
}
func (l *memLock) RecordEvent(string) {}
func (l *memLock) Identity() string   { return "me" }
func (l *memLock) Describe() string   { return "pier-system/pier-controller" }

func TestLeaseFence(t *testing.T) {
	type step struct {
		write  string        // "create", "renew", "release", "other", "fail": a lock write; "read", "taken": a read of ours or of another's record
		took   time.Duration // how long the write took
		wait   time.Duration // then this much time passes
		wantOK bool          // Check after the step
	}
	for _, tc := range []struct {
		name       string
		steps      []step
		wantHolder string // in the Lease at the end
	}{
		{"never acquired", []step{{wantOK: false}}, ""},
		{"acquired", []step{{write: "create", took: 10 * time.Millisecond, wantOK: true}}, "me"},
		{"renewed within the deadline", []step{
			{write: "create", wait: 1900 * time.Millisecond, wantOK: true},
			{write: "renew", wait: 1900 * time.Millisecond, wantOK: true},
		}, "me"},
		{"frozen past the deadline", []step{
			{write: "create", wait: 2 * time.Second, wantOK: false},
		}, "me"},
		{"a slow renewal counts from its start", []step{
			{write: "create", took: 1500 * time.Millisecond, wait: 500 * time.Millisecond, wantOK: false},
		}, "me"},
		{"a failed renewal does not extend", []step{
			{write: "create", wait: time.Second, wantOK: true},
			{write: "fail", wait: time.Second, wantOK: false},
		}, "me"},
		{"released", []step{
			{write: "create", wantOK: true},
			{write: "read", wantOK: true},
			{write: "release", wantOK: false},
		}, ""},
		{"another holder's record does not count", []step{
			{write: "other", wantOK: false},
		}, "them"},
		{"taken over while renewing", []step{
			{write: "create", wantOK: true},
			{write: "taken", wantOK: false},
		}, "them"},
		{"a release after a takeover leaves the Lease alone", []step{
			{write: "create", wantOK: true},
			{write: "taken", wantOK: false},
			{write: "release", wantOK: false},
		}, "them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
			lock := &memLock{clk: clk}
			f := NewLeaseFence(lock, 2*time.Second, clk)
			for i, s := range tc.steps {
				lock.took, lock.fail = s.took, nil
				ctx := context.Background()
				switch s.write {
				case "create":
					_ = f.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
				case "renew":
					_ = f.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
				case "release":
					_ = f.Update(ctx, resourcelock.LeaderElectionRecord{})
				case "other":
					_ = f.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "them"})
				case "taken":
					lock.rec = resourcelock.LeaderElectionRecord{HolderIdentity: "them"}
					_, _, _ = f.Get(ctx)
				case "read":
					_, _, _ = f.Get(ctx)
				case "fail":
					lock.fail = errors.New("timeout")
					_ = f.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
				}
				clk.Step(s.wait)
				if err := f.Check(); (err == nil) != s.wantOK {
					t.Errorf("step %d (%s): Check() = %v, want ok %v", i, s.write, err, s.wantOK)
				}
			}
			if want := strings.TrimPrefix(tc.wantHolder, "-"); tc.wantHolder != "" && lock.rec.HolderIdentity != want {
				t.Errorf("the Lease names %q, want %q", lock.rec.HolderIdentity, want)
			}
		})
	}
}
