package config

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestL2Errors(t *testing.T) {
	const L = KindL2Advertisement
	base := func(advs ...v1alpha1.L2Advertisement) Objects {
		return Objects{Pools: []v1alpha1.IPAddressPool{pool("a", "198.51.100.0/24")}, L2Advertisements: advs}
	}
	runErrorCases(t, []errorCase{
		{name: "all pools", objs: base(l2("x", v1alpha1.L2AdvertisementSpec{}))},
		{name: "interfaces", objs: base(l2("x", v1alpha1.L2AdvertisementSpec{
			Interfaces: []string{"eth0", "bond0.100", "", strings.Repeat("e", 16), "a/b", "eth 1", "veth:1", "..", strings.Repeat("e", 15)},
		})),
			want: []*Error{
				perr(L, "x", "spec.interfaces[2]", `interface name "" must be 1 to 15 bytes long`),
				perr(L, "x", "spec.interfaces[3]", `interface name "eeeeeeeeeeeeeeee" must be 1 to 15 bytes long`),
				perr(L, "x", "spec.interfaces[4]", `interface name "a/b" contains '/', ':' or NUL`),
				perr(L, "x", "spec.interfaces[5]", `interface name "eth 1" contains whitespace`),
				perr(L, "x", "spec.interfaces[6]", `interface name "veth:1" contains '/', ':' or NUL`),
				perr(L, "x", "spec.interfaces[7]", `".." is not an interface name`),
			}},
		{name: "missing pool", objs: base(l2("x", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"a", "b"}})),
			want: []*Error{perr(L, "x", "spec.ipAddressPools[1]", `IPAddressPool "b" does not exist`, ref(KindIPAddressPool, "b"))}},
		{name: "reference to an invalid pool is not missing", objs: Objects{
			Pools:            []v1alpha1.IPAddressPool{pool("bad", "nope")},
			L2Advertisements: []v1alpha1.L2Advertisement{l2("x", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"bad"}})},
		},
			want: []*Error{perr(KindIPAddressPool, "bad", "spec.addresses[0]", `"nope" is not a CIDR or range`)}},
		{name: "selectors", objs: base(l2("x", v1alpha1.L2AdvertisementSpec{
			NodeSelectors:    []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "NotIn"}}}},
			ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"ok": "yes"}}},
		})),
			want: []*Error{perr(L, "x", "spec.nodeSelectors[0]", `invalid label selector: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`)}},
		{name: "spread", objs: base(l2("x", v1alpha1.L2AdvertisementSpec{Spread: "RoundRobin"}),
			l2("y", v1alpha1.L2AdvertisementSpec{Spread: v1alpha1.L2SpreadBalanced})),
			want: []*Error{perr(L, "x", "spec.spread", `spread "RoundRobin" is not one of Hash, Balanced`)}},
		{name: "empty name", objs: base(l2("", v1alpha1.L2AdvertisementSpec{})),
			want: []*Error{perr(L, "", "metadata.name", "must not be empty")}},
	})
}
