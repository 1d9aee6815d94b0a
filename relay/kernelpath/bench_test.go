package kernelpath

import (
	"net/netip"
	"testing"
)

// BenchmarkApplyFull writes a whole table (one listener, both families,
// 65,537 buckets over 4 IPv4 backends) in one transaction, as a relay does
// when it starts.
func BenchmarkApplyFull(b *testing.B) {
	tl := newLab(b)
	p := tl.newPath(b, baseOptions("pier_bench_full"))
	ls := []Listener{{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: table(size, tl.servers4)}}
	b.ResetTimer()
	for b.Loop() {
		p.installed = nil // force a rebuild; the old table is replaced below
		if err := tl.relay.Do(func() error { return RemoveTables("pier_bench_full", "") }); err != nil {
			b.Fatal(err)
		}
		if err := p.Apply(ls); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyBackendLeaves replaces the buckets of one of 4 backends (a
// quarter of the map), as a relay does when a backend goes down, and puts
// them back.
func BenchmarkApplyBackendLeaves(b *testing.B) {
	tl := newLab(b)
	p := tl.newPath(b, baseOptions("pier_bench_update"))
	four := []Listener{{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: table(size, tl.servers4)}}
	// Like Maglev, only the leaving backend's buckets change owner.
	buckets := table(size, tl.servers4)
	for i, s := range buckets {
		if s == tl.servers4[3] {
			buckets[i] = tl.servers4[i%3]
		}
	}
	three := []Listener{{Name: "u", Addr: netip.IPv6Unspecified(), Port: listen, Buckets: buckets}}
	if err := p.Apply(four); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		next := three
		if i%2 == 1 {
			next = four
		}
		if err := p.Apply(next); err != nil {
			b.Fatal(err)
		}
	}
}
