package bgp_test

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/speaker/bgp"
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

// BenchmarkAnnouncerHeap reports the live heap an announcer holds per
// announced path (20,000 /32s to one peer, no session: what it keeps, not
// what it sends) and the time SetPaths takes for one path added to, then
// removed from, that list.
//
//	go test -run '^$' -bench AnnouncerHeap ./speaker/bgp/
func BenchmarkAnnouncerHeap(b *testing.B) {
	const n = 20000
	a, err := bgp.New(bgp.Options{RouterID: nodeAddr(1), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	// A peer nobody answers (its dials stay on the loopback): its policy
	// and prefix sets exist, no session.
	peer := bgp.Peer{Name: "frr", Address: netip.MustParseAddr("127.0.0.1"), Port: 9, MyASN: nodeASN, PeerASN: routerASN, ConnectTime: time.Hour}
	if err := a.SetPeers(ctx, []bgp.Peer{peer}); err != nil {
		b.Fatal(err)
	}
	before := liveHeap()
	base, more := manyPaths(n), manyPaths(n+1)
	if err := a.SetPaths(ctx, base); err != nil {
		b.Fatal(err)
	}
	heap := liveHeap() - before
	for b.Loop() {
		if err := a.SetPaths(ctx, more); err != nil {
			b.Fatal(err)
		}
		if err := a.SetPaths(ctx, base); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(heap)/n, "heap-B/path") // after b.Loop, which resets metrics
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// liveHeap is the bytes of live objects after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
