package bgp_test

import (
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPathsToFRR measures, per round on a fresh announcer process with
// established sessions: SIGHUP with 1,000 /32 paths -> all in FRR's BGP
// table ("announce-ms"), and SIGTERM -> all gone from FRR ("withdraw-ms").
// Figures are p50 over the rounds; FRR is polled every 20ms or so (each
// vtysh call costs about that), which bounds the resolution.
//
//	go test -run '^$' -bench PathsToFRR -benchtime 5x ./speaker/bgp/
func BenchmarkPathsToFRR(b *testing.B) {
	l := newBGPLab(b, 2) // the last node is the MD5 one
	paths := manyPaths(1000)
	var announce, withdraw []time.Duration
	for b.Loop() {
		delete(l.procs, 1)
		l.configure(1, peersFor(""), nil)
		l.waitFRREstablished(nodeAddr(1))
		start := time.Now()
		l.configure(1, peersFor(""), paths)
		l.waitPrefixesFrom(1, len(paths))
		announce = append(announce, time.Since(start))
		p := l.procs[1]
		start = time.Now()
		if err := p.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		l.waitPrefixesFrom(1, 0)
		withdraw = append(withdraw, time.Since(start))
		<-p.Done()
	}
	b.ReportMetric(p50(announce), "announce-ms")
	b.ReportMetric(p50(withdraw), "withdraw-ms")
	b.Logf("1000 paths: announce %v, withdraw after SIGTERM %v", announce, withdraw)
}

func p50(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2].Microseconds()) / 1000
}
