package allocator

import (
	"errors"
	"math/big"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "198.51.100.10-198.51.100.20", want: "198.51.100.10-198.51.100.20"},
		{in: " 2001:db8::1 - 2001:db8::ff ", want: "2001:db8::1-2001:db8::ff"},
		{in: "198.51.100.10", wantErr: true},
		{in: "198.51.100.10-x", wantErr: true},
		{in: "x-198.51.100.10", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRange(%q) error = %v", tt.in, err)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("ParseRange(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestInvalidPools(t *testing.T) {
	r := func(a, b string) Range { return Range{netip.MustParseAddr(a), netip.MustParseAddr(b)} }
	tests := []struct {
		name  string
		pools []Pool
	}{
		{"no name", []Pool{{Prefixes: prefixes("192.0.2.0/24")}}},
		{"no addresses", []Pool{{Name: "a"}}},
		{"duplicate name", []Pool{{Name: "a", Prefixes: prefixes("192.0.2.0/25")}, {Name: "a", Prefixes: prefixes("192.0.2.128/25")}}},
		{"host bits", []Pool{{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}}},
		{"invalid prefix", []Pool{{Name: "a", Prefixes: []netip.Prefix{{}}}}},
		{"reversed range", []Pool{{Name: "a", Ranges: []Range{r("192.0.2.9", "192.0.2.1")}}}},
		{"mixed range", []Pool{{Name: "a", Ranges: []Range{r("192.0.2.1", "2001:db8::1")}}}},
		{"mapped range", []Pool{{Name: "a", Ranges: []Range{r("::ffff:192.0.2.1", "::ffff:192.0.2.9")}}}},
		{"zone", []Pool{{Name: "a", Ranges: []Range{r("fe80::1%eth0", "fe80::9%eth0")}}}},
		{"covers IPv4-mapped", []Pool{{Name: "a", Prefixes: prefixes("::/64")}}},
		{"overlap", []Pool{{Name: "a", Prefixes: prefixes("192.0.2.0/24")}, {Name: "b", Ranges: ranges("192.0.2.255-192.0.3.1")}}},
		{"overlap v6", []Pool{{Name: "a", Prefixes: prefixes("2001:db8::/64")}, {Name: "b", Prefixes: prefixes("2001:db8::/48")}}},
		{"bad selector", []Pool{{Name: "a", Prefixes: prefixes("192.0.2.0/24"),
			ServiceSelectors: []Selector{{MatchExpressions: []Requirement{{Key: "x", Operator: In}}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Options{Pools: tt.pools}); !errors.Is(err, ErrInvalidPool) {
				t.Errorf("New error = %v, want ErrInvalidPool", err)
			}
			a := newAlloc(t, v4pool)
			if _, err := a.SetPools(tt.pools); !errors.Is(err, ErrInvalidPool) {
				t.Errorf("SetPools error = %v, want ErrInvalidPool", err)
			}
			if got := a.Stats(); len(got) != 1 || got[0].Pool != "v4" {
				t.Errorf("failed SetPools changed the pools: %v", got)
			}
		})
	}
}

func TestStats(t *testing.T) {
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	two125 := new(big.Int).Lsh(big.NewInt(1), 125)
	minus := func(x *big.Int, n int64) *big.Int { return new(big.Int).Sub(x, big.NewInt(n)) }
	tests := []struct {
		name   string
		pool   Pool
		assign []*Request
		want   []PoolStats
	}{{
		name:   "IPv6 /64 is exact",
		pool:   Pool{Name: "p", Prefixes: prefixes("2001:db8::/64")},
		assign: []*Request{r("ns/a", fams(IPv6)), r("ns/b", fams(IPv6))},
		want:   []PoolStats{{Pool: "p", Family: IPv6, Total: two64, InUse: 2, Available: minus(two64, 2)}},
	}, {
		name: "IPv6 /3 and an IPv4 /32",
		pool: Pool{Name: "p", Prefixes: prefixes("2000::/3", "192.0.2.1/32")},
		want: []PoolStats{
			{Pool: "p", Family: IPv4, Total: big.NewInt(1), Available: big.NewInt(1)},
			{Pool: "p", Family: IPv6, Total: two125, Available: two125},
		},
	}, {
		name:   "avoid buggy IPs across /24s, overlapping parts merged",
		pool:   Pool{Name: "p", Ranges: ranges("198.51.100.250-198.51.102.5", "198.51.100.251-198.51.100.252"), AvoidBuggyIPs: true},
		assign: []*Request{r("ns/a")},
		// 6 + 256 + 6 addresses, minus .255, .0, .255, .0
		want: []PoolStats{{Pool: "p", Family: IPv4, Total: big.NewInt(264), InUse: 1, Available: big.NewInt(263)}},
	}, {
		name:   "/128",
		pool:   Pool{Name: "p", Prefixes: prefixes("2001:db8::1/128")},
		assign: []*Request{r("ns/a", fams(IPv6))},
		want:   []PoolStats{{Pool: "p", Family: IPv6, Total: big.NewInt(1), InUse: 1, Available: big.NewInt(0)}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAlloc(t, tt.pool)
			for _, req := range tt.assign {
				if _, err := a.Assign(*req); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, a.Stats(), cmpBig); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetPoolsNeverMoves(t *testing.T) {
	a := newAlloc(t, v4pool, v6range, Pool{Name: "web", Prefixes: prefixes("192.0.2.0/31"), Namespaces: []string{"web"}})
	runSteps(t, a, []step{
		{req: r("ns/a"), want: []string{"198.51.100.0 v4"}},
		{req: r("ns/b", ips("198.51.100.3")), want: []string{"198.51.100.3 v4"}},
		{req: r("ns/c", fams(IPv6)), want: []string{"2001:db8::10 v6"}},
		{req: r("web/d", pool("web")), want: []string{"192.0.2.0 web"}},
	})
	// Shrink v4 to its first half, drop v6, make web eligible for nobody.
	orphans, err := a.SetPools([]Pool{
		{Name: "v4", Prefixes: prefixes("198.51.100.0/31")},
		{Name: "web", Prefixes: prefixes("192.0.2.0/31"), Namespaces: []string{"nobody"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Orphan{{key("ns/b"), netip.MustParseAddr("198.51.100.3")}, {key("ns/c"), netip.MustParseAddr("2001:db8::10")}}
	if diff := cmp.Diff(want, orphans, cmpAddr); diff != "" {
		t.Errorf("orphans (-want +got):\n%s", diff)
	}
	runSteps(t, a, []step{
		// Every Service keeps its address on its next Assign.
		{req: r("ns/a"), want: []string{"198.51.100.0 v4"}},
		{req: r("ns/b", ips("198.51.100.3")), want: []string{"198.51.100.3 "}},
		{req: r("ns/c", fams(IPv6)), want: []string{"2001:db8::10 "}},
		{req: r("web/d", pool("web")), want: []string{"192.0.2.0 web"}},
		// Nobody new gets an orphan or an address of a pool it is not eligible for.
		{req: r("ns/e"), want: []string{"198.51.100.1 v4"}},
		{req: r("ns/f", ips("198.51.100.3")), err: ErrNotInAnyPool},
		{req: r("web/g", pool("web")), err: ErrNoEligiblePool},
		{release: "ns/b"},
	})
	if diff := cmp.Diff(want[1:], a.Orphans(), cmpAddr); diff != "" {
		t.Errorf("orphans after release (-want +got):\n%s", diff)
	}
	// Growing the pool back adopts the orphan: counted in use again.
	web := Pool{Name: "web", Prefixes: prefixes("192.0.2.0/31")}
	if _, err := a.SetPools([]Pool{v4pool, v6range, web}); err != nil {
		t.Fatal(err)
	}
	if got := a.Orphans(); len(got) != 0 {
		t.Errorf("orphans = %v", got)
	}
	checkStats(t, a)
	runSteps(t, a, []step{
		{req: r("ns/h"), want: []string{"198.51.100.2 v4"}},
		{req: r("ns/i", fams(IPv6)), want: []string{"2001:db8::11 v6"}},
	})
}

func TestSetPoolsAvoidBuggyMakesOrphan(t *testing.T) {
	a := newAlloc(t, Pool{Name: "p", Prefixes: prefixes("198.51.100.0/30")})
	runSteps(t, a, []step{{req: r("ns/a"), want: []string{"198.51.100.0 p"}}})
	orphans, err := a.SetPools([]Pool{{Name: "p", Prefixes: prefixes("198.51.100.0/30"), AvoidBuggyIPs: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Orphan{{key("ns/a"), netip.MustParseAddr("198.51.100.0")}}
	if diff := cmp.Diff(want, orphans, cmpAddr); diff != "" {
		t.Errorf("orphans (-want +got):\n%s", diff)
	}
	checkStats(t, a)
}
