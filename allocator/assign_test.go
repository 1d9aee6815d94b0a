package allocator

import (
	"testing"
)

var (
	v4pool   = Pool{Name: "v4", Prefixes: prefixes("198.51.100.0/30")}
	v6range  = Pool{Name: "v6", Ranges: ranges("2001:db8::10-2001:db8::12")}
	dualPool = Pool{Name: "dual", Prefixes: prefixes("203.0.113.0/31", "2001:db8:1::/127")}
)

func TestAssign(t *testing.T) {
	tests := []struct {
		name  string
		pools []Pool
		steps []step
	}{{
		name:  "IPv4 lowest free first",
		pools: []Pool{v4pool},
		steps: []step{
			{req: r("ns/a"), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/b"), want: []string{"198.51.100.1 v4"}},
		},
	}, {
		name:  "IPv6 range",
		pools: []Pool{v6range},
		steps: []step{
			{req: r("ns/a", fams(IPv6)), want: []string{"2001:db8::10 v6"}},
			{req: r("ns/b", fams(IPv6)), want: []string{"2001:db8::11 v6"}},
			{req: r("ns/c", fams(IPv6)), want: []string{"2001:db8::12 v6"}},
			{req: r("ns/d", fams(IPv6)), err: ErrPoolExhausted},
		},
	}, {
		name: "/32 and /128 pools fill up",
		pools: []Pool{{Name: "one4", Prefixes: prefixes("192.0.2.7/32")},
			{Name: "one6", Prefixes: prefixes("2001:db8::7/128")}},
		steps: []step{
			{req: r("ns/a", policy(RequireDualStack)), want: []string{"192.0.2.7 one4", "2001:db8::7 one6"}},
			{req: r("ns/b"), err: ErrPoolExhausted},
			{req: r("ns/b", fams(IPv6)), err: ErrPoolExhausted},
			{release: "ns/a"},
			{req: r("ns/b", fams(IPv6)), want: []string{"2001:db8::7 one6"}},
		},
	}, {
		name:  "released address is reused lowest first",
		pools: []Pool{v4pool},
		steps: []step{
			{req: r("ns/a"), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/b"), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/c"), want: []string{"198.51.100.2 v4"}},
			{release: "ns/c"},
			{release: "ns/a"},
			{req: r("ns/d"), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/e"), want: []string{"198.51.100.2 v4"}},
			{req: r("ns/f"), want: []string{"198.51.100.3 v4"}},
			{req: r("ns/g"), err: ErrPoolExhausted},
		},
	}, {
		name:  "avoid buggy IPs skips .255 and .0",
		pools: []Pool{{Name: "p", Ranges: ranges("198.18.0.254-198.18.1.1"), AvoidBuggyIPs: true}},
		steps: []step{
			{req: r("ns/a"), want: []string{"198.18.0.254 p"}},
			{req: r("ns/b"), want: []string{"198.18.1.1 p"}},
			{req: r("ns/c"), err: ErrPoolExhausted},
			{req: r("ns/c", ips("198.18.0.255")), err: ErrAddressNotInPool},
			{req: r("ns/c", ips("198.18.1.0")), err: ErrAddressNotInPool},
		},
	}, {
		name:  "requested address",
		pools: []Pool{v4pool, v6range},
		steps: []step{
			{req: r("ns/a", ips("198.51.100.2")), want: []string{"198.51.100.2 v4"}},
			{req: r("ns/b", ips("198.51.100.2")), err: ErrAddressInUse, msg: "ns/a"},
			{req: r("ns/b", ips("192.0.2.1")), err: ErrNotInAnyPool},
			{req: r("ns/b", ips("198.51.100.3"), pool("v6")), err: ErrAddressNotInPool},
			{req: r("ns/b", ips("198.51.100.3"), pool("nope")), err: ErrUnknownPool},
			{req: r("ns/b", ips("2001:db8::12")), want: []string{"2001:db8::12 v6"}},
			{req: r("ns/c"), want: []string{"198.51.100.0 v4"}},
		},
	}, {
		name:  "requested pair",
		pools: []Pool{dualPool},
		steps: []step{
			{req: r("ns/a", policy(RequireDualStack), ips("2001:db8:1::1", "203.0.113.1")),
				want: []string{"2001:db8:1::1 dual", "203.0.113.1 dual"}},
			{req: r("ns/b", policy(RequireDualStack), ips("203.0.113.0")), err: ErrInvalidRequest},
			{req: r("ns/b", ips("203.0.113.0", "2001:db8:1::")), err: ErrInvalidRequest}, // SingleStack
			{req: r("ns/b", policy(PreferDualStack), ips("203.0.113.0", "2001:db8:1::1")), err: ErrAddressInUse},
			{req: r("ns/b", policy(PreferDualStack), ips("203.0.113.0")), want: []string{"203.0.113.0 dual"}},
		},
	}, {
		name:  "requested pool, auto-assign off",
		pools: []Pool{v4pool, {Name: "manual", Prefixes: prefixes("192.0.2.0/31"), DisableAutoAssign: true}},
		steps: []step{
			{req: r("ns/a", pool("manual")), want: []string{"192.0.2.0 manual"}},
			{req: r("ns/b"), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/c", ips("192.0.2.1")), want: []string{"192.0.2.1 manual"}},
			{req: r("ns/d", pool("manual")), err: ErrPoolExhausted},
			{req: r("ns/d", pool("nope")), err: ErrUnknownPool},
		},
	}, {
		name:  "only manual pools",
		pools: []Pool{{Name: "manual", Prefixes: prefixes("192.0.2.0/31"), DisableAutoAssign: true}},
		steps: []step{{req: r("ns/a"), err: ErrNoEligiblePool}},
	}, {
		name: "priority: lower number first, then name, then next when full",
		pools: []Pool{
			{Name: "z", Prefixes: prefixes("192.0.2.0/32"), Priority: 1},
			{Name: "b", Prefixes: prefixes("198.51.100.0/32"), Priority: 2},
			{Name: "a", Prefixes: prefixes("203.0.113.0/32"), Priority: 2},
		},
		steps: []step{
			{req: r("ns/a"), want: []string{"192.0.2.0 z"}},
			{req: r("ns/b"), want: []string{"203.0.113.0 a"}},
			{req: r("ns/c"), want: []string{"198.51.100.0 b"}},
			{req: r("ns/d"), err: ErrPoolExhausted},
		},
	}, {
		name: "eligibility by namespace, namespace labels, service labels",
		pools: []Pool{
			{Name: "a-names", Prefixes: prefixes("192.0.2.0/32"), Namespaces: []string{"team1"}},
			{Name: "b-nslabels", Prefixes: prefixes("192.0.2.1/32"),
				NamespaceSelectors: []Selector{{MatchLabels: map[string]string{"env": "prod"}}}},
			{Name: "c-svclabels", Prefixes: prefixes("192.0.2.2/32"),
				ServiceSelectors: []Selector{{MatchExpressions: []Requirement{{Key: "tier", Operator: In, Values: []string{"edge"}}}}}},
		},
		steps: []step{
			{req: r("other/a"), err: ErrNoEligiblePool},
			{req: r("other/a", svcLabels("tier", "edge")), want: []string{"192.0.2.2 c-svclabels"}},
			{req: r("other/b", nsLabels("env", "prod")), want: []string{"192.0.2.1 b-nslabels"}},
			{req: r("team1/c"), want: []string{"192.0.2.0 a-names"}},
			{req: r("other/d", pool("a-names")), err: ErrNoEligiblePool},
			{req: r("other/d", ips("192.0.2.0")), err: ErrNoEligiblePool},
		},
	}, {
		name:  "family unavailable",
		pools: []Pool{v4pool},
		steps: []step{
			{req: r("ns/a", fams(IPv6)), err: ErrFamilyUnavailable},
			{req: r("ns/a", policy(RequireDualStack)), err: ErrFamilyUnavailable},
			{req: r("ns/a", policy(PreferDualStack), fams(IPv6, IPv4)), want: []string{"198.51.100.0 v4"}},
		},
	}, {
		name:  "dual-stack with IPv6 exhausted",
		pools: []Pool{{Name: "p", Prefixes: prefixes("198.51.100.0/30", "2001:db8::/128")}},
		steps: []step{
			{req: r("ns/a", fams(IPv6)), want: []string{"2001:db8:: p"}},
			{req: r("ns/b", policy(RequireDualStack)), err: ErrPoolExhausted},
			{req: r("ns/c", policy(PreferDualStack)), want: []string{"198.51.100.0 p"}},
			// ns/b held nothing after its failure, so it gets .1 now.
			{req: r("ns/b"), want: []string{"198.51.100.1 p"}},
		},
	}, {
		name:  "dual-stack family order",
		pools: []Pool{dualPool},
		steps: []step{
			{req: r("ns/a", policy(PreferDualStack), fams(IPv6, IPv4)), want: []string{"2001:db8:1:: dual", "203.0.113.0 dual"}},
			{req: r("ns/b", policy(RequireDualStack)), want: []string{"203.0.113.1 dual", "2001:db8:1::1 dual"}},
		},
	}, {
		name:  "idempotent, upgrade to dual-stack keeps IPv4",
		pools: []Pool{dualPool},
		steps: []step{
			{req: r("ns/a"), want: []string{"203.0.113.0 dual"}},
			{req: r("ns/a"), want: []string{"203.0.113.0 dual"}},
			{req: r("ns/a", policy(RequireDualStack)), want: []string{"203.0.113.0 dual", "2001:db8:1:: dual"}},
			{req: r("ns/a", policy(RequireDualStack)), want: []string{"203.0.113.0 dual", "2001:db8:1:: dual"}},
			{req: r("ns/a", fams(IPv6)), want: []string{"2001:db8:1:: dual"}},
			{req: r("ns/b"), want: []string{"203.0.113.0 dual"}},
		},
	}, {
		name:  "changed request moves, failed move keeps the old address",
		pools: []Pool{v4pool, {Name: "other", Prefixes: prefixes("192.0.2.0/32")}},
		steps: []step{
			{req: r("ns/a"), want: []string{"192.0.2.0 other"}},
			{req: r("ns/a", ips("198.51.100.3")), want: []string{"198.51.100.3 v4"}},
			{req: r("ns/b", ips("198.51.100.2")), want: []string{"198.51.100.2 v4"}},
			{req: r("ns/a", ips("198.51.100.2")), err: ErrAddressInUse, msg: "ns/b"},
			{req: r("ns/a", ips("198.51.100.3")), want: []string{"198.51.100.3 v4"}},
			{req: r("ns/a"), want: []string{"198.51.100.3 v4"}}, // no longer asked: sticky
			{req: r("ns/a", pool("other")), want: []string{"192.0.2.0 other"}},
		},
	}, {
		name:  "invalid requests",
		pools: []Pool{v4pool},
		steps: []step{
			{req: r("ns/"), err: ErrInvalidRequest},
			{req: r("ns/a", fams(IPv4, IPv4)), err: ErrInvalidRequest},
			{req: r("ns/a", fams(IPv4, IPv6, IPv4)), err: ErrInvalidRequest},
			{req: r("ns/a", fams(Family(5))), err: ErrInvalidRequest},
			{req: r("ns/a", ips("198.51.100.1", "198.51.100.2")), err: ErrInvalidRequest},
			{req: r("ns/a", ips("2001:db8::1")), err: ErrNotInAnyPool},
			{req: r("ns/a", fams(IPv4), ips("2001:db8::1")), err: ErrInvalidRequest},
			{req: r("ns/a", policy(FamilyPolicy(9))), err: ErrInvalidRequest},
			{req: r("ns/a", ips("::ffff:198.51.100.1")), want: []string{"198.51.100.1 v4"}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newAlloc(t, tt.pools...), tt.steps)
		})
	}
}

func TestAssignDeterministic(t *testing.T) {
	run := func() []string {
		a := newAlloc(t, v4pool, v6range)
		var out []string
		for _, s := range []string{"ns/a", "ns/b", "ns/c"} {
			got, err := a.Assign(*r(s, policy(PreferDualStack)))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, show(got)...)
		}
		a.Release(key("ns/b"))
		got, _ := a.Assign(*r("ns/d", policy(PreferDualStack)))
		return append(out, show(got)...)
	}
	first := run()
	for range 3 {
		if got := run(); !equalStrings(first, got) {
			t.Fatalf("run gave %v, first run %v", got, first)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
