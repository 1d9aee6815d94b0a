package speaker

import (
	"context"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// The announcer's context outlives the speaker's: it ends grace after the
// node left the group and the speaker's context ended, on the clock given.
func TestAfterLeave(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan struct{})
	out := afterLeave(ctx, clk, left, time.Hour)
	alive := func(when string) {
		t.Helper()
		if out.Err() != nil {
			t.Fatalf("ended %s", when)
		}
	}
	alive("at start")
	cancel()
	close(left)
	eventually(t, "waiting for the grace on the clock", clk.HasWaiters)
	alive("as soon as the node left")
	clk.Step(time.Hour - time.Second)
	alive("before the grace passed")
	clk.Step(time.Second)
	eventually(t, "ended once the grace passed", func() bool { return out.Err() != nil })
}
