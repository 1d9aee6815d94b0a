package allocator

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func claim(svc string, age int, addrList ...string) Claim {
	return Claim{Service: key(svc), Addrs: addrs(addrList...), Created: t0.Add(time.Duration(age) * time.Second)}
}

func shared(c Claim, k string, ports ...Port) Claim {
	c.SharingKey, c.Ports = k, ports
	return c
}

// conflictView is a comparable summary of a Conflict.
type conflictView struct {
	Service, Addr, Holder string
	Sentinel              string
}

func viewConflicts(cs []Conflict) []conflictView {
	var out []conflictView
	for _, c := range cs {
		v := conflictView{Service: c.Service.String(), Addr: c.Addr.String(), Sentinel: "?"}
		if c.Holder != (ServiceKey{}) {
			v.Holder = c.Holder.String()
		}
		for _, s := range sentinels {
			if errors.Is(c.Err, s) {
				v.Sentinel = s.Error()
			}
		}
		out = append(out, v)
	}
	return out
}

func viewSnapshot(a *Allocator) map[string][]string {
	out := map[string][]string{}
	for k, as := range a.snapshot() {
		out[k.String()] = show(as)
	}
	return out
}

func TestRestore(t *testing.T) {
	tests := []struct {
		name      string
		claims    []Claim
		want      map[string][]string
		conflicts []conflictView
	}{{
		name:   "plain",
		claims: []Claim{claim("ns/a", 0, "198.51.100.2"), claim("ns/b", 1, "2001:db8::11", "198.51.100.0")},
		want:   map[string][]string{"ns/a": {"198.51.100.2 v4"}, "ns/b": {"2001:db8::11 v6", "198.51.100.0 v4"}},
	}, {
		name:   "newer loses",
		claims: []Claim{claim("ns/new", 5, "198.51.100.1"), claim("ns/old", 1, "198.51.100.1")},
		want:   map[string][]string{"ns/old": {"198.51.100.1 v4"}},
		conflicts: []conflictView{
			{Service: "ns/new", Addr: "198.51.100.1", Holder: "ns/old", Sentinel: ErrAddressInUse.Error()},
		},
	}, {
		name:   "tie broken by namespace/name",
		claims: []Claim{claim("ns/b", 1, "198.51.100.1"), claim("ns/a", 1, "198.51.100.1")},
		want:   map[string][]string{"ns/a": {"198.51.100.1 v4"}},
		conflicts: []conflictView{
			{Service: "ns/b", Addr: "198.51.100.1", Holder: "ns/a", Sentinel: ErrAddressInUse.Error()},
		},
	}, {
		name: "loser keeps its other family",
		claims: []Claim{claim("ns/new", 5, "198.51.100.1", "2001:db8::10"),
			claim("ns/old", 1, "198.51.100.1")},
		want: map[string][]string{"ns/old": {"198.51.100.1 v4"}, "ns/new": {"2001:db8::10 v6"}},
		conflicts: []conflictView{
			{Service: "ns/new", Addr: "198.51.100.1", Holder: "ns/old", Sentinel: ErrAddressInUse.Error()},
		},
	}, {
		name: "valid sharing",
		claims: []Claim{shared(claim("ns/a", 1, "198.51.100.1"), "k", tcp80),
			shared(claim("ns/b", 2, "198.51.100.1"), "k", udp80),
			shared(claim("ns/c", 3, "198.51.100.1"), "k", tcp80)},
		want: map[string][]string{"ns/a": {"198.51.100.1 v4"}, "ns/b": {"198.51.100.1 v4"}},
		conflicts: []conflictView{
			{Service: "ns/c", Addr: "198.51.100.1", Holder: "ns/a", Sentinel: ErrSharingConflict.Error()},
		},
	}, {
		name:   "outside every pool is kept",
		claims: []Claim{claim("ns/a", 1, "192.0.2.1")},
		want:   map[string][]string{"ns/a": {"192.0.2.1 "}},
	}, {
		name:   "invalid claims",
		claims: []Claim{claim("ns/a", 1, "198.51.100.1", "198.51.100.2"), {Service: key("ns/b"), Addrs: []netip.Addr{{}}}},
		want:   map[string][]string{"ns/a": {"198.51.100.1 v4"}},
		conflicts: []conflictView{
			{Service: "ns/a", Addr: "198.51.100.2", Sentinel: ErrInvalidRequest.Error()},
			{Service: "ns/b", Addr: "invalid IP", Sentinel: ErrInvalidRequest.Error()},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, order := range permutations(tt.claims) {
				a := newAlloc(t, v4pool, v6range)
				got := viewConflicts(a.Restore(order))
				if diff := cmp.Diff(tt.conflicts, got); diff != "" {
					t.Errorf("order %d conflicts (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(tt.want, viewSnapshot(a)); diff != "" {
					t.Errorf("order %d (-want +got):\n%s", i, diff)
				}
				if err := a.check(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func permutations(cs []Claim) [][]Claim {
	if len(cs) <= 1 {
		return [][]Claim{cs}
	}
	var out [][]Claim
	for i := range cs {
		rest := slices.Concat(cs[:i], cs[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]Claim{cs[i]}, p...))
		}
	}
	return out
}

func TestRestoreThenAssign(t *testing.T) {
	a := newAlloc(t, v4pool)
	if c := a.Restore([]Claim{claim("ns/a", 1, "198.51.100.0"), claim("ns/b", 2, "198.51.100.2")}); c != nil {
		t.Fatal(c)
	}
	runSteps(t, a, []step{
		{req: r("ns/a"), want: []string{"198.51.100.0 v4"}}, // idempotent on restored state
		{req: r("ns/c"), want: []string{"198.51.100.1 v4"}},
		{req: r("ns/d"), want: []string{"198.51.100.3 v4"}},
		{req: r("ns/e"), err: ErrPoolExhausted},
	})
}

func TestRestoreOneOlderEvictsNewer(t *testing.T) {
	a := newAlloc(t, v4pool)
	req := r("ns/new", ips("198.51.100.1"))
	req.Created = t0.Add(time.Hour)
	runSteps(t, a, []step{{req: req, want: []string{"198.51.100.1 v4"}}})
	got := viewConflicts(a.RestoreOne(claim("ns/old", 0, "198.51.100.1")))
	want := []conflictView{{Service: "ns/new", Addr: "198.51.100.1", Holder: "ns/old", Sentinel: ErrAddressInUse.Error()}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"ns/old": {"198.51.100.1 v4"}}, viewSnapshot(a)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A newer claim on a held address loses.
	got = viewConflicts(a.RestoreOne(claim("ns/newer", 9, "198.51.100.1")))
	want = []conflictView{{Service: "ns/newer", Addr: "198.51.100.1", Holder: "ns/old", Sentinel: ErrAddressInUse.Error()}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
}

func TestRestoreConflictMessage(t *testing.T) {
	a := newAlloc(t, v4pool)
	cs := a.Restore([]Claim{claim("ns/a", 1, "198.51.100.1"), claim("ns/b", 2, "198.51.100.1")})
	if len(cs) != 1 {
		t.Fatalf("conflicts = %v", cs)
	}
	if got, want := cs[0].Err.Error(), "restore ns/b: 198.51.100.1 is held by ns/a: address in use"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}
