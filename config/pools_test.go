package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestPoolErrors(t *testing.T) {
	const P = KindIPAddressPool
	withAlloc := func(p v1alpha1.IPAddressPool, sa v1alpha1.ServiceAllocation) v1alpha1.IPAddressPool {
		p.Spec.ServiceAllocation = &sa
		return p
	}
	runErrorCases(t, []errorCase{
		{name: "valid v4 v6 cidr and range", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "198.51.100.0/24", "2001:db8::/64", "203.0.113.10-203.0.113.20", "2001:db8:1::1-2001:db8:1::ff"),
		}}},
		{name: "adjacent entries", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "198.51.100.0/25"), pool("b", "198.51.100.128-198.51.100.200"),
		}}},
		{name: "bad cidr", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("pool-a", "198.51.100.0/24", "198.51.100.300/24")}},
			want: []*Error{perr(P, "pool-a", "spec.addresses[1]", `"198.51.100.300/24" is not a CIDR or range`)}},
		{name: "host bits", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("a", "198.51.100.1/24")}},
			want: []*Error{perr(P, "a", "spec.addresses[0]", `"198.51.100.1/24" has host bits set; did you mean 198.51.100.0/24?`)}},
		{name: "single address", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("a", "198.51.100.7", "2001:db8::7")}},
			want: []*Error{
				perr(P, "a", "spec.addresses[0]", `"198.51.100.7" is a single address, not a CIDR or range (write 198.51.100.7/32)`),
				perr(P, "a", "spec.addresses[1]", `"2001:db8::7" is a single address, not a CIDR or range (write 2001:db8::7/128)`),
			}},
		{name: "garbage and empty", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("a", "", "pool", "1-2")}},
			want: []*Error{
				perr(P, "a", "spec.addresses[0]", `"" is not a CIDR or range`),
				perr(P, "a", "spec.addresses[1]", `"pool" is not a CIDR or range`),
				perr(P, "a", "spec.addresses[2]", `"1-2" is not a CIDR or range`),
			}},
		{name: "bad ranges", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "198.51.100.20-198.51.100.10", "198.51.100.1-2001:db8::1", "fe80::1%eth0-fe80::2%eth0", "::ffff:198.51.100.1-::ffff:198.51.100.2"),
		}},
			want: []*Error{
				perr(P, "a", "spec.addresses[0]", `"198.51.100.20-198.51.100.10" is reversed: 198.51.100.20 comes after 198.51.100.10`),
				perr(P, "a", "spec.addresses[1]", `"198.51.100.1-2001:db8::1" mixes IPv4 and IPv6`),
				perr(P, "a", "spec.addresses[2]", `"fe80::1%eth0-fe80::2%eth0": addresses with a zone are not allowed`),
				perr(P, "a", "spec.addresses[3]", `"::ffff:198.51.100.1-::ffff:198.51.100.2" is IPv4-mapped IPv6; write IPv4 addresses as IPv4`),
			}},
		{name: "mapped v6", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("a", "::/0", "::ffff:198.51.100.0/120")}},
			want: []*Error{
				perr(P, "a", "spec.addresses[0]", `"::/0" overlaps ::ffff:0:0/96 (IPv4-mapped IPv6 addresses)`),
				perr(P, "a", "spec.addresses[1]", `"::ffff:198.51.100.0/120" is IPv4-mapped IPv6; write IPv4 addresses as IPv4`),
			}},
		{name: "special ipv4 addresses and ranges holding them", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "0.0.0.0/32", "0.0.0.0/0", "127.0.0.1/32", "169.254.10.0/24", "224.0.0.0/4",
				"239.255.255.250-239.255.255.251", "255.255.255.255/32", "198.51.100.0/24"),
		}},
			want: []*Error{
				perr(P, "a", "spec.addresses[0]", `"0.0.0.0/32" holds unspecified and this-network addresses (0.0.0.0/8), which no Service can use`),
				perr(P, "a", "spec.addresses[1]", `"0.0.0.0/0" holds unspecified and this-network addresses (0.0.0.0/8), which no Service can use`),
				perr(P, "a", "spec.addresses[2]", `"127.0.0.1/32" holds loopback addresses (127.0.0.0/8), which no Service can use`),
				perr(P, "a", "spec.addresses[3]", `"169.254.10.0/24" holds link-local addresses (169.254.0.0/16), which no Service can use`),
				perr(P, "a", "spec.addresses[4]", `"224.0.0.0/4" holds multicast addresses (224.0.0.0/4), which no Service can use`),
				perr(P, "a", "spec.addresses[5]", `"239.255.255.250-239.255.255.251" holds multicast addresses (224.0.0.0/4), which no Service can use`),
				perr(P, "a", "spec.addresses[6]", `"255.255.255.255/32" holds the broadcast address (255.255.255.255/32), which no Service can use`),
			}},
		{name: "special ipv6 addresses and ranges holding them", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "::/128", "::1/128", "::-::2", "fe80::/64", "febf:ffff::/32", "ff02::1-ff02::2", "ff00::/8", "2001:db8::/64"),
		}},
			want: []*Error{
				perr(P, "a", "spec.addresses[0]", `"::/128" holds the unspecified address (::/128), which no Service can use`),
				perr(P, "a", "spec.addresses[1]", `"::1/128" holds the loopback address (::1/128), which no Service can use`),
				perr(P, "a", "spec.addresses[2]", `"::-::2" holds the unspecified address (::/128), which no Service can use`),
				perr(P, "a", "spec.addresses[3]", `"fe80::/64" holds link-local addresses (fe80::/10), which no Service can use`),
				perr(P, "a", "spec.addresses[4]", `"febf:ffff::/32" holds link-local addresses (fe80::/10), which no Service can use`),
				perr(P, "a", "spec.addresses[5]", `"ff02::1-ff02::2" holds multicast addresses (ff00::/8), which no Service can use`),
				perr(P, "a", "spec.addresses[6]", `"ff00::/8" holds multicast addresses (ff00::/8), which no Service can use`),
			}},
		{name: "next to special ranges is fine", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "1.0.0.0/8", "126.0.0.0/8", "128.0.0.0/16", "169.253.0.0/16", "169.255.0.0/16", "223.0.0.0/8",
				"240.0.0.0-255.255.255.254", "::2-::ff", "fe00::/9", "fec0::/10"),
		}}},
		{name: "no addresses", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("a")}},
			want: []*Error{perr(P, "a", "spec.addresses", "must list at least one CIDR or range")}},
		{name: "overlap within pool", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "198.51.100.0/24", "198.51.100.10-198.51.100.20"),
		}},
			want: []*Error{perr(P, "a", "spec.addresses[1]", `"198.51.100.10-198.51.100.20" overlaps spec.addresses[0] ("198.51.100.0/24")`)}},
		{name: "overlap between pools names both", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("b", "2001:db8::/48"), pool("a", "2001:db8:0:5::/64"),
		}},
			want: []*Error{perr(P, "b", "spec.addresses[0]",
				`"2001:db8::/48" overlaps IPAddressPool pier-system/a spec.addresses[0] ("2001:db8:0:5::/64")`, ref(P, "a"))}},
		{name: "overlap after a long entry", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "198.51.100.0/24"), pool("b", "198.51.100.10-198.51.100.11"), pool("c", "198.51.100.20/32"),
		}},
			want: []*Error{
				perr(P, "b", "spec.addresses[0]", `"198.51.100.10-198.51.100.11" overlaps IPAddressPool pier-system/a spec.addresses[0] ("198.51.100.0/24")`, ref(P, "a")),
				perr(P, "c", "spec.addresses[0]", `"198.51.100.20/32" overlaps IPAddressPool pier-system/a spec.addresses[0] ("198.51.100.0/24")`, ref(P, "a")),
			}},
		{name: "duplicate name across namespaces", objs: Objects{Pools: []v1alpha1.IPAddressPool{
			pool("a", "198.51.100.0/24"),
			{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "a"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}}},
		}},
			want: []*Error{perr(P, "a", "metadata.name", `IPAddressPool other/a already uses the name "a"`, Ref{P, "other", "a"})}},
		{name: "empty name", objs: Objects{Pools: []v1alpha1.IPAddressPool{pool("", "198.51.100.0/24")}},
			want: []*Error{perr(P, "", "metadata.name", "must not be empty")}},
		{name: "service allocation", objs: Objects{Pools: []v1alpha1.IPAddressPool{withAlloc(pool("a", "198.51.100.0/24"), v1alpha1.ServiceAllocation{
			Priority:           -1,
			Namespaces:         []string{"ok", "Not_OK"},
			NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "b"}}, {MatchLabels: map[string]string{"bad key!": "x"}}},
			ServiceSelectors:   []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "In"}}}},
		})}},
			want: []*Error{
				perr(P, "a", "spec.serviceAllocation.priority", "-1 is negative; want 0 or more (lower is tried first)"),
				perr(P, "a", "spec.serviceAllocation.namespaces[1]", `"Not_OK" is not a namespace name (an RFC 1123 label)`),
				perr(P, "a", "spec.serviceAllocation.namespaceSelectors[1]", `invalid label selector: key: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`),
				perr(P, "a", "spec.serviceAllocation.serviceSelectors[0]", `invalid label selector: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`),
			}},
	})
}

func TestPoolsConfig(t *testing.T) {
	b := pool("b", "2001:db8::/64", "198.51.100.10-198.51.100.20")
	b.Labels = map[string]string{"tier": "edge"}
	b.Spec.AutoAssign = ptr(false)
	b.Spec.AvoidBuggyIPs = true
	b.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
		Priority:           5,
		Namespaces:         []string{"voice"},
		NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "rtc"}}},
		ServiceSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"sbc"}},
		}}},
	}
	cfg, err := Parse(Objects{Pools: []v1alpha1.IPAddressPool{b, pool("a", "203.0.113.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []allocator.Pool{
		{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
		{
			Name:     "b",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")},
			Ranges:   []allocator.Range{{First: netip.MustParseAddr("198.51.100.10"), Last: netip.MustParseAddr("198.51.100.20")}},

			DisableAutoAssign:  true,
			AvoidBuggyIPs:      true,
			Priority:           5,
			Namespaces:         []string{"voice"},
			NamespaceSelectors: []allocator.Selector{{MatchLabels: map[string]string{"team": "rtc"}}},
			ServiceSelectors: []allocator.Selector{{MatchExpressions: []allocator.Requirement{
				{Key: "app", Operator: allocator.In, Values: []string{"sbc"}},
			}}},
		},
	}
	if diff := cmp.Diff(want, cfg.Pools, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("Pools (-want +got):\n%s", diff)
	}
	wantLabels := map[string]map[string]string{"a": {}, "b": {"tier": "edge"}}
	if diff := cmp.Diff(wantLabels, cfg.PoolLabels); diff != "" {
		t.Errorf("PoolLabels (-want +got):\n%s", diff)
	}
	if _, err := allocator.New(allocator.Options{Pools: cfg.Pools}); err != nil {
		t.Errorf("allocator.New refused the parsed pools: %v", err)
	}
}

func TestCommonBits(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"198.51.100.10", "198.51.100.20", 27},
		{"198.51.100.200", "198.51.100.250", 24 + 2},
		{"198.51.100.5", "198.51.100.5", 32},
		{"0.0.0.0", "255.255.255.255", 0},
		{"2001:db8::1", "2001:db8::ff", 120},
	} {
		if got := commonBits(netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)); got != tc.want {
			t.Errorf("commonBits(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
