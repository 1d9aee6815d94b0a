package allocator

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// benchPools is an IPv4 /15 and an IPv6 /64, both auto-assign.
func benchPools() []Pool {
	return []Pool{
		{Name: "v4", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}},
		{Name: "v6", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}},
	}
}

// benchRequests returns n distinct Services alternating IPv4 and IPv6.
func benchRequests(n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		f := IPv4
		if i%2 == 1 {
			f = IPv6
		}
		reqs[i] = Request{
			Service:  ServiceKey{Namespace: fmt.Sprintf("ns%d", i%100), Name: fmt.Sprintf("svc%d", i)},
			Families: []Family{f},
		}
	}
	return reqs
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// BenchmarkAssign assigns n distinct Services into a fresh Allocator per
// iteration. ns/assign and B/assign are per assignment; B/addr is the live
// heap the Allocator keeps per assigned address.
func BenchmarkAssign(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			reqs := benchRequests(n)
			var elapsed time.Duration
			var allocs, live uint64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				a, err := New(Options{Pools: benchPools()})
				if err != nil {
					b.Fatal(err)
				}
				before := heapInUse()
				allocBefore := totalAlloc()
				start := time.Now()
				b.StartTimer()
				for i := range reqs {
					if _, err := a.Assign(reqs[i]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				elapsed += time.Since(start)
				allocs += totalAlloc() - allocBefore
				live += heapInUse() - before
				runtime.KeepAlive(a)
			}
			per := float64(b.N * n)
			b.ReportMetric(float64(elapsed.Nanoseconds())/per, "ns/assign")
			b.ReportMetric(float64(allocs)/per, "B/assign")
			b.ReportMetric(float64(live)/per, "B/addr")
		})
	}
}

// BenchmarkRestore rebuilds an Allocator from n existing assignments.
func BenchmarkRestore(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
		claims := benchClaims(b, n)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			a, err := New(Options{Pools: benchPools()})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if c := a.Restore(claims); len(c) != 0 {
				b.Fatalf("conflicts: %v", c[:1])
			}
		}
	})
}

func benchClaims(b *testing.B, n int) []Claim {
	src, err := New(Options{Pools: benchPools()})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	claims := make([]Claim, n)
	for i, r := range benchRequests(n) {
		out, err := src.Assign(r)
		if err != nil {
			b.Fatal(err)
		}
		claims[i] = Claim{Service: r.Service, Addrs: []netip.Addr{out[0].Addr}, Created: t0.Add(time.Duration(i) * time.Second)}
	}
	// Feed them in an order unrelated to age.
	for i := range claims {
		j := (i * 7919) % n
		claims[i], claims[j] = claims[j], claims[i]
	}
	return claims
}
