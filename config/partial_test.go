package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// kept is what a partial Config holds, by name.
type kept struct {
	Pools    []string
	L2       map[string][]string // advertisement -> pools
	Peers    []string
	BGP      map[string][2][]string // advertisement -> pools, peers
	Problems []string               // "Kind name field"
}

func keptOf(cfg *Config, err error) kept {
	k := kept{L2: map[string][]string{}, BGP: map[string][2][]string{}}
	for _, p := range cfg.Pools {
		k.Pools = append(k.Pools, p.Name)
	}
	for _, a := range cfg.L2Advertisements {
		k.L2[a.Name] = a.Pools
	}
	for _, p := range cfg.BGPPeers {
		k.Peers = append(k.Peers, p.Name)
	}
	for _, a := range cfg.BGPAdvertisements {
		k.BGP[a.Name] = [2][]string{a.Pools, a.Peers}
	}
	for _, e := range Errors(err) {
		k.Problems = append(k.Problems, e.Kind+" "+e.Name+" "+e.Field)
	}
	return k
}

// TestParseKeepsWhatIsValid: one object's fault (a deleted pool an
// advertisement names, a bad entry, an overlap) leaves that object, or
// only the dangling reference, out; everything valid is kept.
func TestParseKeepsWhatIsValid(t *testing.T) {
	badSel := []metav1.LabelSelector{{MatchLabels: map[string]string{"bad key!": "x"}}}
	for _, tc := range []struct {
		name string
		objs Objects
		want kept
	}{{
		name: "advertisement naming a deleted pool keeps the other",
		objs: Objects{
			Pools:            []v1alpha1.IPAddressPool{pool("a", "198.51.100.0/25")},
			L2Advertisements: []v1alpha1.L2Advertisement{l2("adv", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"a", "b"}})},
		},
		want: kept{Pools: []string{"a"}, L2: map[string][]string{"adv": {"a"}},
			Problems: []string{"L2Advertisement adv spec.ipAddressPools[1]"}},
	}, {
		name: "advertisement naming only deleted pools announces nothing, not everything",
		objs: Objects{
			Pools:            []v1alpha1.IPAddressPool{pool("a", "198.51.100.0/25")},
			L2Advertisements: []v1alpha1.L2Advertisement{l2("adv", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"b"}})},
		},
		want: kept{Pools: []string{"a"}, L2: map[string][]string{"adv": nil},
			Problems: []string{"L2Advertisement adv spec.ipAddressPools[0]"}},
	}, {
		name: "invalid pool and overlapping pool left out, the others kept",
		objs: Objects{
			Pools: []v1alpha1.IPAddressPool{
				pool("a", "198.51.100.0/25"), pool("b", "198.51.100.300/24"),
				pool("c", "198.51.100.64/26"), pool("d", "203.0.113.0/24"),
			},
			L2Advertisements: []v1alpha1.L2Advertisement{l2("all", v1alpha1.L2AdvertisementSpec{})},
		},
		want: kept{Pools: []string{"a", "d"}, L2: map[string][]string{"all": {"a", "b", "c", "d"}},
			Problems: []string{"IPAddressPool b spec.addresses[0]", "IPAddressPool c spec.addresses[0]"}},
	}, {
		name: "advertisement with a bad node selector is left out, not widened",
		objs: Objects{
			Pools: []v1alpha1.IPAddressPool{pool("a", "198.51.100.0/25")},
			L2Advertisements: []v1alpha1.L2Advertisement{
				l2("bad", v1alpha1.L2AdvertisementSpec{NodeSelectors: badSel}),
				l2("iface", v1alpha1.L2AdvertisementSpec{Interfaces: []string{"eth1", "no/slash"}}),
				l2("good", v1alpha1.L2AdvertisementSpec{}),
			},
		},
		want: kept{Pools: []string{"a"}, L2: map[string][]string{"good": {"a"}},
			Problems: []string{"L2Advertisement bad spec.nodeSelectors[0]", "L2Advertisement iface spec.interfaces[1]"}},
	}, {
		name: "bgp advertisement naming a deleted peer and pool keeps the rest",
		objs: Objects{
			Pools:    []v1alpha1.IPAddressPool{pool("a", "203.0.113.0/24")},
			BGPPeers: []v1alpha1.BGPPeer{peer("r1", "192.0.2.1"), peer("r2", "192.0.2.1"), peer("bad", "not-an-ip")},
			BGPAdvertisements: []v1alpha1.BGPAdvertisement{
				bgpAdv("some", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"a", "gone"}, Peers: []string{"gone", "r1"}}),
				bgpAdv("none", v1alpha1.BGPAdvertisementSpec{Peers: []string{"gone"}}),
				bgpAdv("badlen", v1alpha1.BGPAdvertisementSpec{AggregationLength: ptr[int32](16)}),
			},
		},
		want: kept{Pools: []string{"a"}, Peers: []string{"r1"}, L2: map[string][]string{},
			BGP: map[string][2][]string{"some": {{"a"}, {"r1"}}, "none": {{"a"}, nil}},
			Problems: []string{
				"BGPPeer bad spec.peerAddress", "BGPPeer r2 spec",
				"BGPAdvertisement badlen spec.aggregationLength",
				"BGPAdvertisement none spec.peers[0]",
				"BGPAdvertisement some spec.ipAddressPools[1]", "BGPAdvertisement some spec.peers[0]",
			}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(tc.objs)
			if cfg == nil {
				t.Fatalf("Parse returned no config (err %v); want the valid part", err)
			}
			if diff := cmp.Diff(tc.want, keptOf(cfg, err), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if _, err := allocator.New(allocator.Options{Pools: cfg.Pools}); err != nil {
				t.Errorf("allocator.New refused the kept pools: %v", err)
			}
		})
	}
}
