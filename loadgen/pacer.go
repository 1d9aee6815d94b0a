package loadgen

import (
	"math"
	"time"
)

// Pacer spreads sends evenly at a fixed rate. It is driven by the times its
// caller passes in, so it is tested without a clock. A sender that falls
// behind by more than MaxBurst sends gets MaxBurst at once and the rest is
// written off (counted in Missed) rather than sent as a catch-up flood:
// an open-loop generator must not turn a stall into a burst the system under
// test never saw at the target rate.
type Pacer struct {
	start    time.Time
	interval float64 // nanoseconds per send; 0: unpaced
	maxBurst int64
	sent     int64 // sends handed out or written off
	missed   int64
}

// NewPacer paces rate sends per second from start; rate 0 means as fast as
// the caller can, maxBurst at a time. maxBurst is at least 1.
func NewPacer(rate float64, maxBurst int, start time.Time) *Pacer {
	p := &Pacer{start: start, maxBurst: int64(max(maxBurst, 1))}
	if rate > 0 {
		p.interval = 1e9 / rate
	}
	return p
}

// Due returns how many sends are due at now (at most MaxBurst) and counts
// them as handed out. The first send is due at start.
func (p *Pacer) Due(now time.Time) int {
	if p.interval == 0 {
		p.sent += p.maxBurst
		return int(p.maxBurst)
	}
	elapsed := now.Sub(p.start)
	if elapsed < 0 {
		return 0
	}
	target := int64(math.Floor(float64(elapsed)/p.interval)) + 1
	due := target - p.sent
	if due > p.maxBurst {
		p.missed += due - p.maxBurst
		due = p.maxBurst
	}
	if due <= 0 {
		return 0
	}
	p.sent = target
	return int(due)
}

// Next is when the next send is due (now when unpaced).
func (p *Pacer) Next(now time.Time) time.Time {
	if p.interval == 0 {
		return now
	}
	return p.start.Add(time.Duration(math.Ceil(float64(p.sent) * p.interval)))
}

// Finish writes off every send due before end that was not handed out (the
// caller stopped, or was not scheduled, before it could take them), so that
// handed-out plus Missed is exactly the schedule's count up to end.
func (p *Pacer) Finish(end time.Time) {
	if p.interval == 0 {
		return
	}
	due := int64(math.Ceil(float64(end.Sub(p.start)) / p.interval))
	if due > p.sent {
		p.missed += due - p.sent
		p.sent = due
	}
}

// Missed is the number of sends written off because the caller fell behind.
func (p *Pacer) Missed() int64 { return p.missed }
