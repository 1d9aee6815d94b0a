package members

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stallRound freezes the member process p (SIGSTOP: a speaker that gets no
// CPU, as under a tight CPU limit or on an overloaded node) for stall, and
// reports whether any observer took it for dead meanwhile or in the
// settle time after.
func stallRound(tb testing.TB, ms []*running, victim string, p interface{ Signal(syscall.Signal) error }, stall, settle time.Duration) bool {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	lost := watchLost(ms, victim, stall)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		tb.Fatal(err)
	}
	return watchLost(ms, victim, settle) || lost
}

// watchLost polls the observers every millisecond for d and reports
// whether any stopped listing name.
func watchLost(ms []*running, name string, d time.Duration) bool {
	lost := false
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		for _, m := range ms {
			lost = lost || !slices.Contains(m.Live(), name)
		}
	}
	return lost
}

// BenchmarkStallTolerance measures false failovers: how long a live
// speaker may get no CPU before the others declare it dead and its
// addresses move, per profile. Each round freezes one member of three for
// the stall, then waits for the verdict and for it to be back; the result
// is the share of rounds with a false failover per stall length. Run it as
// root: go test -run '^$' -bench StallTolerance -benchtime 5x ./speaker/members/
func BenchmarkStallTolerance(b *testing.B) {
	stalls := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond,
		200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	for _, profile := range []string{"fast-lan", "lan"} {
		b.Run("profile="+profile, func(b *testing.B) {
			timers, err := Profile(profile)
			if err != nil {
				b.Fatal(err)
			}
			l := newTestLab(b, 3)
			ms := []*running{l.start(0, func(o *Options) { o.Timers = timers }), l.start(1, func(o *Options) { o.Timers = timers })}
			p := l.startProcess(2, testKey, profileEnv+"="+profile)
			all := l.names(0, 1, 2)
			waitLive(b, converge, all, ms...)
			// After a stall: the verdict, if any, comes within the
			// suspicion timeout, and a refuted member is back within
			// a few probe intervals.
			settle := timers.ProbeInterval*time.Duration(2+2*timers.SuspicionMult) + time.Second
			var row []string
			for _, stall := range stalls {
				falses := 0
				for range b.N {
					if stallRound(b, ms, l.hosts[2].Name, p, stall, settle) {
						falses++
					}
					waitLive(b, 30*time.Second, all, ms...)
				}
				row = append(row, fmt.Sprintf("%v: %d/%d", stall, falses, b.N))
				b.ReportMetric(float64(falses)/float64(b.N), fmt.Sprintf("false@%dms", stall.Milliseconds()))
			}
			b.Logf("%s, false failovers per stall length: %s", profile, strings.Join(row, ", "))
			b.ReportMetric(0, "ns/op")
		})
	}
}
