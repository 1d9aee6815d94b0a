package loadgen

import (
	"context"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// pacedSend hands the Pacer's due sends to send(flow, k), round robin over
// flows, until Duration has passed since start. send returns how many it
// sent. It runs on a locked thread so it can sleep with nanosleep at
// microsecond resolution.
func (g *Generator) pacedSend(ctx context.Context, start time.Time, flows int, send func(flow, k int) int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0) // 1 us; per thread
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)  // back to the default
	p := NewPacer(g.opts.Rate, g.opts.Batch, start)
	end := start.Add(g.opts.Duration)
	next := 0
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		n := p.Due(now)
		if n == 0 {
			t := p.Next(now)
			if t.After(end) {
				t = end
			}
			sleepUntil(t, now)
			continue
		}
		// Spread n over the flows: one each when n is small, equal chunks
		// otherwise.
		chunk := max(1, (n+flows-1)/flows)
		for n > 0 {
			k := min(chunk, n)
			send(next, k)
			n -= k
			next = (next + 1) % flows
		}
	}
	p.Finish(end)
	g.missed = uint64(p.Missed())
}

func sleepUntil(t, now time.Time) {
	d := t.Sub(now)
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
