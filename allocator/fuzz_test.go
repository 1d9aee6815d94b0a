package allocator

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzAllocator decodes a sequence of pool edits, assigns, releases and
// restores from the input and checks invariants after every step.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 31, 0, 1, 2, 1, 3, 0, 0, 1, 7, 0, 0, 1, 3, 1, 3, 0, 0, 1, 5, 0, 0, 2, 2, 3, 1})
	f.Add([]byte{1, 1, 2, 4, 3, 2, 4, 5, 1, 2, 1, 1, 1, 1, 1, 2, 4, 3, 2, 4, 6, 1, 2, 2, 0, 0, 5, 1})
	f.Add([]byte{3, 2, 0, 3, 4, 1, 0, 1, 2, 3, 0, 1, 0, 5, 3, 1, 5, 2, 1, 0, 1, 1, 0, 0, 21, 2, 0, 2})
	f.Add([]byte{1, 2, 1, 0, 0, 0, 0, 1, 1, 3, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 14, 0, 1, 1, 1, 0})
	f.Add([]byte{1, 0, 1, 0, 0, 4, 0, 1, 1, 1, 1, 0, 0, 3, 0, 1, 1, 2, 1, 0, 0, 2, 0, 1, 9, 4, 0, 0, 2, 1})
	f.Add([]byte{3, 0, 0, 2, 12, 3, 1, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 3, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{1, 3, 2, 2, 3, 0, 1, 0, 0, 0, 0, 1, 4, 2, 3, 3, 0, 2, 0, 0, 0, 0, 1, 5, 2, 3, 3, 0, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data: data}
		a, err := New(Options{Pools: fuzzPools(31, 0)})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 64 && !r.done(); i++ {
			fuzzStep(t, a, r)
			if err := a.check(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			checkStats(t, a)
		}
	})
}

type fuzzReader struct {
	data []byte
	off  int
}

func (r *fuzzReader) done() bool { return r.off >= len(r.data) }

func (r *fuzzReader) next(n int) int {
	if r.done() {
		return 0
	}
	b := r.data[r.off]
	r.off++
	return int(b) % n
}

func fuzzStep(t *testing.T, a *Allocator, r *fuzzReader) {
	switch r.next(4) {
	case 0:
		mask, variant := r.next(32), r.next(16)
		if _, err := a.SetPools(fuzzPools(mask, variant)); err != nil {
			t.Fatalf("set pools: %v", err)
		}
	case 1:
		fuzzAssign(t, a, fuzzRequest(r))
	case 2:
		a.Release(fuzzKeys[r.next(len(fuzzKeys))])
	case 3:
		fuzzRestore(t, a, r)
	}
}

var (
	fuzzKeys  = []ServiceKey{{"ns1", "s0"}, {"ns1", "s1"}, {"ns1", "s2"}, {"ns2", "s0"}, {"ns2", "s1"}, {"ns2", "s2"}}
	fuzzNS    = map[string]map[string]string{"ns1": {"env": "prod"}, "ns2": {"env": "dev"}}
	fuzzAddrs = addrs("198.51.100.0", "198.51.100.1", "198.51.100.3", "198.18.0.250",
		"198.18.0.255", "198.18.1.0", "198.18.1.2", "192.0.2.0", "203.0.113.0", "203.0.113.1",
		"203.0.113.9", "2001:db8::1", "2001:db8::3", "2001:db8:1::6", "2001:db8:4::1",
		"192.0.2.99", "2001:db8:ff::1")
	fuzzPorts    = []Port{{TCP, 80}, {UDP, 80}, {TCP, 443}}
	fuzzFamilies = [][]Family{nil, {IPv4}, {IPv6}, {IPv4, IPv6}, {IPv6, IPv4}}
	fuzzPoolName = []string{"", "", "", "a", "b", "c", "d", "e", "zz"}
	fuzzT0       = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func ranges(ss ...string) []Range {
	out := make([]Range, len(ss))
	for i, s := range ss {
		r, err := ParseRange(s)
		if err != nil {
			panic(err)
		}
		out[i] = r
	}
	return out
}

// fuzzPools returns the pools selected by mask, edited by variant bits.
func fuzzPools(mask, variant int) []Pool {
	all := []Pool{
		{Name: "a", Prefixes: prefixes("198.51.100.0/30", "2001:db8::/126")},
		{Name: "b", Ranges: ranges("198.18.0.250-198.18.1.2"), AvoidBuggyIPs: true, Priority: 1},
		{Name: "c", Ranges: ranges("2001:db8:1::5-2001:db8:1::7"), Prefixes: prefixes("192.0.2.0/32"), Namespaces: []string{"ns1"}},
		{Name: "d", Prefixes: prefixes("203.0.113.0/31"), DisableAutoAssign: true},
		{Name: "e", Prefixes: prefixes("203.0.113.8/30", "2001:db8:4::/127"), Priority: -1,
			ServiceSelectors: []Selector{{MatchLabels: map[string]string{"app": "web"}}}},
	}
	if variant&1 != 0 {
		all[1].AvoidBuggyIPs = false
	}
	if variant&2 != 0 {
		all[0].Prefixes = prefixes("198.51.100.0/31", "2001:db8::/127")
	}
	if variant&4 != 0 {
		all[2].Namespaces = nil
		all[2].NamespaceSelectors = []Selector{{MatchExpressions: []Requirement{{Key: "env", Operator: In, Values: []string{"prod"}}}}}
	}
	if variant&8 != 0 {
		all[0].Priority, all[1].Priority = 2, -2
	}
	var out []Pool
	for i, p := range all {
		if mask&(1<<i) != 0 {
			out = append(out, p)
		}
	}
	return out
}

func fuzzRequest(r *fuzzReader) Request {
	k := fuzzKeys[r.next(len(fuzzKeys))]
	req := Request{
		Service:         k,
		Policy:          FamilyPolicy(r.next(3)),
		Families:        fuzzFamilies[r.next(len(fuzzFamilies))],
		Pool:            fuzzPoolName[r.next(len(fuzzPoolName))],
		NamespaceLabels: fuzzNS[k.Namespace],
		Created:         fuzzT0.Add(time.Duration(r.next(4)) * time.Second),
	}
	req.Addrs = fuzzAddrList(r)
	req.SharingKey, req.Ports = fuzzSharing(r)
	if r.next(2) == 1 {
		req.ServiceLabels = map[string]string{"app": "web"}
	}
	return req
}

func fuzzAddrList(r *fuzzReader) []netip.Addr {
	switch r.next(4) {
	case 2:
		return []netip.Addr{fuzzAddrs[r.next(len(fuzzAddrs))]}
	case 3:
		return []netip.Addr{fuzzAddrs[r.next(len(fuzzAddrs))], fuzzAddrs[r.next(len(fuzzAddrs))]}
	}
	return nil
}

func fuzzSharing(r *fuzzReader) (string, []Port) {
	key := []string{"", "k1", "k2"}[r.next(3)]
	var ports []Port
	for i, m := 0, r.next(8); i < len(fuzzPorts); i++ {
		if m&(1<<i) != 0 {
			ports = append(ports, fuzzPorts[i])
		}
	}
	return key, ports
}

var sentinels = []error{ErrInvalidRequest, ErrUnknownPool, ErrNoEligiblePool, ErrFamilyUnavailable,
	ErrPoolExhausted, ErrAddressInUse, ErrSharingConflict, ErrAddressNotInPool, ErrNotInAnyPool}

func fuzzAssign(t *testing.T, a *Allocator, req Request) {
	before := a.snapshot()
	lowest := map[*famState]ip128{}
	for _, p := range a.pools.ranked {
		for _, f := range p.fams {
			if f == nil {
				continue
			}
			if x, ok := a.lowestFree(f); ok {
				lowest[f] = x
			}
		}
	}
	heldBy := map[ip128][]*service{}
	for x := range a.byAddr {
		heldBy[x] = slices.Clone(a.of(x))
	}
	got, err := a.Assign(req)
	if err != nil {
		if !slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) }) {
			t.Fatalf("error without sentinel: %v", err)
		}
		if diff := cmp.Diff(before, a.snapshot(), cmpAddr); diff != "" {
			t.Fatalf("failed Assign %+v (%v) changed state (-before +after):\n%s", req, err, diff)
		}
		return
	}
	checkAssigned(t, a, req, got, before[req.Service], lowest, heldBy)
	again, err := a.Assign(req)
	if err != nil || !cmp.Equal(got, again, cmpAddr) {
		t.Fatalf("Assign not idempotent: %v then %v, %v", got, again, err)
	}
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func checkAssigned(t *testing.T, a *Allocator, req Request, got, prev []Assignment,
	lowest map[*famState]ip128, heldBy map[ip128][]*service) {
	t.Helper()
	if look, _ := a.Lookup(req.Service); !cmp.Equal(got, look, cmpAddr) {
		t.Fatalf("Assign returned %v, Lookup %v", got, look)
	}
	n := len(got)
	if n == 0 || n > 2 || n == 2 && familyOf(got[0].Addr) == familyOf(got[1].Addr) ||
		req.Policy == SingleStack && n != 1 || req.Policy == RequireDualStack && n != 2 {
		t.Fatalf("%s got %v", req.Policy, got)
	}
	if len(req.Addrs) > 0 && !sameAddrs(req.Addrs, got) {
		t.Fatalf("requested %v, got %v", req.Addrs, got)
	}
	for _, g := range got {
		if slices.ContainsFunc(prev, func(p Assignment) bool { return p.Addr == g.Addr }) {
			continue // kept
		}
		checkNew(t, a, req, g, lowest, heldBy[ipOf(g.Addr)])
	}
}

func sameAddrs(want []netip.Addr, got []Assignment) bool {
	var g []netip.Addr
	for _, x := range got {
		g = append(g, x.Addr)
	}
	return slices.Equal(want, g) || len(want) == 2 && slices.Equal([]netip.Addr{want[1], want[0]}, g)
}

// checkNew checks an address the Service did not hold before.
func checkNew(t *testing.T, a *Allocator, req Request, g Assignment, lowest map[*famState]ip128, others []*service) {
	t.Helper()
	x := ipOf(g.Addr)
	f := a.pools.owner(x)
	if f == nil || g.Pool != f.pool.cfg.Name {
		t.Fatalf("new address %v outside every pool", g)
	}
	cfg := f.pool.cfg
	if !cfg.eligible(req.Service.Namespace, req.NamespaceLabels, req.ServiceLabels) ||
		req.Pool != "" && req.Pool != cfg.Name ||
		len(req.Addrs) == 0 && req.Pool == "" && cfg.DisableAutoAssign {
		t.Fatalf("%s got %v from ineligible pool", req.Service, g)
	}
	for _, o := range others {
		if o.share == nil || o.share.key != req.SharingKey {
			t.Fatalf("%s got %v held by %s", req.Service, g, o.key)
		}
	}
	if len(req.Addrs) == 0 && len(others) == 0 && req.SharingKey == "" && lowest[f] != x {
		t.Fatalf("%s got %v, lowest free is %s", req.Service, g, lowest[f])
	}
}

func checkStats(t *testing.T, a *Allocator) {
	t.Helper()
	var want []PoolStats
	for _, p := range a.pools.ranked {
		for i, f := range p.fams {
			if f == nil {
				continue
			}
			total, used := 0, 0
			f.eachSmall(func(x ip128) error {
				total++
				if a.byAddr[x] != nil {
					used++
				}
				return nil
			})
			want = append(want, PoolStats{Pool: p.cfg.Name, Family: [2]Family{IPv4, IPv6}[i],
				Total: big.NewInt(int64(total)), InUse: uint64(used), Available: big.NewInt(int64(total - used))})
		}
	}
	slices.SortFunc(want, func(a, b PoolStats) int {
		if a.Pool != b.Pool {
			return cmpString(a.Pool, b.Pool)
		}
		return int(a.Family) - int(b.Family)
	})
	if diff := cmp.Diff(want, a.Stats(), cmpBig); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
	var orphans []Orphan
	for x := range a.byAddr {
		if a.pools.owner(x) == nil {
			for _, s := range a.of(x) {
				orphans = append(orphans, Orphan{s.key, x.addr()})
			}
		}
	}
	slices.SortFunc(orphans, func(a, b Orphan) int {
		if c := a.Service.compare(b.Service); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	if diff := cmp.Diff(orphans, a.Orphans(), cmpAddr); diff != "" {
		t.Fatalf("orphans (-want +got):\n%s", diff)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var cmpBig = cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })

func fuzzRestore(t *testing.T, a *Allocator, r *fuzzReader) {
	batch := make([]Claim, 1+r.next(3))
	for i := range batch {
		c := &batch[i]
		c.Service = fuzzKeys[r.next(len(fuzzKeys))]
		c.Addrs = fuzzAddrList(r)
		c.SharingKey, c.Ports = fuzzSharing(r)
		c.Created = fuzzT0.Add(time.Duration(r.next(3)) * time.Second)
	}
	a.Restore(batch)
	checkRestoreOrder(t, a, batch)
}

// checkRestoreOrder restores batch into two fresh allocators, forwards and
// backwards, and compares the outcomes.
func checkRestoreOrder(t *testing.T, a *Allocator, batch []Claim) {
	var pools []Pool
	for _, p := range a.pools.ranked {
		pools = append(pools, p.cfg)
	}
	rev := slices.Clone(batch)
	slices.Reverse(rev)
	var snaps [2]map[ServiceKey][]Assignment
	var conflicts [2]string
	for i, b := range [][]Claim{batch, rev} {
		x, err := New(Options{Pools: pools})
		if err != nil {
			t.Fatal(err)
		}
		conflicts[i] = fmt.Sprint(x.Restore(b))
		snaps[i] = x.snapshot()
		if err := x.check(); err != nil {
			t.Fatalf("after restore: %v", err)
		}
	}
	if diff := cmp.Diff(snaps[0], snaps[1], cmpAddr); diff != "" || conflicts[0] != conflicts[1] {
		t.Fatalf("restore depends on order: %s\n%s\n%s", diff, conflicts[0], conflicts[1])
	}
}
