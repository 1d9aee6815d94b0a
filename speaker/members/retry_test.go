package members

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	testclock "k8s.io/utils/clock/testing"
)

// TestRetryDelays: after a verdict the retries come at delays doubling from
// the first while shorter than the last (the rejoin tick), and a new
// verdict starts them over.
func TestRetryDelays(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(0, 0))
	r := newRetry(clk, 100*time.Millisecond, time.Second)
	if r.C() != nil {
		t.Fatal("a retry is due before any verdict")
	}
	fired := func() []time.Duration { // the retries' times until none is due
		var out []time.Duration
		start := clk.Now()
		for r.C() != nil && clk.Since(start) < 5*time.Second {
			clk.Step(10 * time.Millisecond)
			select {
			case <-r.C():
				out = append(out, clk.Since(start))
				r.next()
			default:
			}
		}
		return out
	}
	r.start()
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond, 1500 * time.Millisecond}
	if diff := cmp.Diff(want, fired()); diff != "" {
		t.Errorf("retries after a verdict (-want +got):\n%s", diff)
	}
	r.start()
	clk.Step(50 * time.Millisecond)
	r.start() // a second verdict before the first retry: from the start again
	if diff := cmp.Diff(want, fired()); diff != "" {
		t.Errorf("retries after a second verdict (-want +got):\n%s", diff)
	}
	r.stop()
	if r.C() != nil {
		t.Error("a retry is due after stop")
	}
}
