package loadgen

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	ns := func(ns int) time.Time { return t0.Add(time.Duration(ns)) }
	type step struct {
		Now    time.Time
		Due    int
		Next   time.Time
		Missed int64
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"even 10k/s", 10_000, 8, []step{
			{at(-5), 0, at(0), 0}, // before the start
			{at(0), 1, at(100), 0},
			{at(50), 0, at(100), 0},
			{at(100), 1, at(200), 0},
			{at(399), 2, at(400), 0}, // 200 and 300 are due
			{at(399), 0, at(400), 0},
		}},
		{"late sender gets a burst, not a flood", 10_000, 4, []step{
			{at(0), 1, at(100), 0},
			{at(1000), 4, at(1100), 6}, // 10 due: 4 sent, 6 written off
			{at(1100), 1, at(1200), 6},
		}},
		{"fractional interval", 3, 10, []step{
			{at(0), 1, ns(333_333_334), 0},
			{ns(333_333_333), 0, ns(333_333_334), 0},
			{ns(333_333_334), 1, ns(666_666_667), 0},
			{at(1_000_000), 2, ns(1_333_333_334), 0}, // 666.67 ms and 1 s
		}},
		{"unpaced", 0, 16, []step{
			{at(0), 16, at(0), 0},
			{at(0), 16, at(0), 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacer(tc.rate, tc.burst, t0)
			for i, s := range tc.steps {
				got := step{s.Now, p.Due(s.Now), p.Next(s.Now), p.Missed()}
				if diff := cmp.Diff(s, got); diff != "" {
					t.Errorf("step %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestPacerRateOverASecond(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := NewPacer(48_000, 32, t0)
	total := 0
	for now := t0; now.Before(t0.Add(time.Second)); now = now.Add(37 * time.Microsecond) {
		total += p.Due(now)
	}
	if total < 47_999 || total > 48_000 || p.Missed() != 0 {
		t.Errorf("sent %d in a second at 48,000/s (missed %d)", total, p.Missed())
	}
}

// TestPacerFinish: what a stalled caller never took is written off, so
// sends plus misses match the schedule.
func TestPacerFinish(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := NewPacer(2000, 32, t0) // one per 500 us
	got := p.Due(t0.Add(100 * time.Millisecond))
	got += p.Due(t0.Add(200 * time.Millisecond))
	p.Finish(t0.Add(300 * time.Millisecond)) // sends at 0, 0.5, ..., 299.5 ms
	if total := int64(got) + p.Missed(); total != 600 {
		t.Errorf("handed out %d + missed %d = %d, want 600", got, p.Missed(), total)
	}
	p.Finish(t0.Add(300 * time.Millisecond))
	if total := int64(got) + p.Missed(); total != 600 {
		t.Errorf("second Finish: total %d, want 600", total)
	}
}
