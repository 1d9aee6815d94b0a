package members

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// killLoop runs member n-1 as a process next to n-1 in-process members and
// SIGKILLs it kills times, restarting it in between. It returns, per kill,
// the time from the signal until every survivor had dropped it.
func killLoop(tb testing.TB, n, kills int) []time.Duration {
	l := newTestLab(tb, n)
	var ms []*running
	idx := make([]int, 0, n)
	for i := range n - 1 {
		ms = append(ms, l.start(i, nil))
		idx = append(idx, i)
	}
	survivors := l.names(idx...)
	all := l.names(append(idx, n-1)...)
	victim := l.hosts[n-1].Name
	var out []time.Duration
	for range kills {
		p := l.startProcess(n-1, testKey)
		waitLive(tb, converge, all, ms...)
		time.Sleep(150 * time.Millisecond) // out of the join's burst of gossip
		start := time.Now()
		if err := p.Signal(syscall.SIGKILL); err != nil {
			tb.Fatal(err)
		}
		out = append(out, slices.Max(timeGone(tb, start, converge, victim, ms...)))
		waitLive(tb, converge, survivors, ms...)
		<-p.Done()
	}
	return out
}

func summary(ds []time.Duration) (p50, max time.Duration) {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2], s[len(s)-1]
}

// TestFailureDetection logs time-to-dead-at-all-survivors over 10 kills in a
// 3-node cluster. It asserts only that every kill is detected.
func TestFailureDetection(t *testing.T) {
	ds := killLoop(t, 3, 10)
	p50, max := summary(ds)
	t.Logf("SIGKILL to dead at both survivors, 10 kills: p50 %v, max %v (all: %v)", p50, max, ds)
}

// BenchmarkFailureDetection reports time-to-dead-at-all-survivors per kill;
// run it with a count, e.g. -bench FailureDetection -benchtime 10x (each
// kill takes about half a second).
func BenchmarkFailureDetection(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			ds := killLoop(b, n, b.N)
			p50, max := summary(ds)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(max.Microseconds())/1000, "max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
