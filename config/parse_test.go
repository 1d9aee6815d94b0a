package config

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// fullObjects is a valid set of every kind, in no particular order.
func fullObjects() Objects {
	edge := pool("edge", "198.51.100.200-198.51.100.250", "2001:db8:100::/120")
	edge.Labels = map[string]string{"tier": "edge"}
	core := pool("core", "203.0.113.0/24")
	r2 := peer("r2", "2001:db8::1")
	r2.Spec.PeerPort = 1179
	r2.Spec.HoldTime, r2.Spec.KeepaliveTime, r2.Spec.ConnectTime = dur(30*time.Second), dur(5*time.Second), dur(time.Minute)
	r2.Spec.SourceAddress = "2001:db8::10"
	r2.Spec.PasswordSecret = &v1alpha1.SecretKeyRef{Name: "bgp-auth"}
	r2.Spec.EBGPMultiHop, r2.Spec.EnableGracefulRestart = true, true
	r2.Spec.MaxPrefixes = 500
	r2.Spec.AddressFamilies = []v1alpha1.AddressFamily{v1alpha1.IPv6Unicast, v1alpha1.IPv4Unicast}
	r2.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}
	return Objects{
		Pools: []v1alpha1.IPAddressPool{edge, core},
		L2Advertisements: []v1alpha1.L2Advertisement{
			l2("l2-edge", v1alpha1.L2AdvertisementSpec{
				IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "edge"}}},
				IPAddressPools:         []string{"edge"},
				Interfaces:             []string{"eth1"},
				NodeSelectors:          []metav1.LabelSelector{{MatchLabels: map[string]string{"l2": "yes"}}},
				RequireReadyEndpoints:  true,
				Spread:                 v1alpha1.L2SpreadBalanced,
			}),
			l2("l2-all", v1alpha1.L2AdvertisementSpec{Spread: v1alpha1.L2SpreadHash}),
		},
		BGPPeers: []v1alpha1.BGPPeer{r2, peer("r1", "192.0.2.1")},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{bgpAdv("core", v1alpha1.BGPAdvertisementSpec{
			IPAddressPools:        []string{"core"},
			AggregationLength:     ptr[int32](24),
			LocalPref:             ptr[int64](200),
			Communities:           []string{"65000:100", "no-export", "65535:65281", "large:64512:1:2"},
			Peers:                 []string{"r1"},
			ServiceSelectors:      []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "sbc"}}},
			RequireReadyEndpoints: true,
		})},
	}
}

func TestParseFull(t *testing.T) {
	cfg, err := Parse(fullObjects())
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Pools: []allocator.Pool{
			{Name: "core", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
			{
				Name:     "edge",
				Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::/120")},
				Ranges:   []allocator.Range{{First: netip.MustParseAddr("198.51.100.200"), Last: netip.MustParseAddr("198.51.100.250")}},
			},
		},
		PoolLabels: map[string]map[string]string{"core": {}, "edge": {"tier": "edge"}},
		L2Advertisements: []L2Advertisement{
			{Namespace: ns, Name: "l2-all", Pools: []string{"core", "edge"}},
			{Namespace: ns, Name: "l2-edge", Pools: []string{"edge"}, Interfaces: []string{"eth1"}, NodeSelectors: Selectors{sel(t, "l2=yes")},
				RequireReadyEndpoints: true, Balanced: true},
		},
		BGPPeers: []BGPPeer{
			{
				Namespace: ns, Name: "r1", MyASN: 64512, PeerASN: 64513,
				Address: netip.MustParseAddr("192.0.2.1"), Port: 179,
				HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 10 * time.Second,
				Families: []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast},
			},
			{
				Namespace: ns, Name: "r2", MyASN: 64512, PeerASN: 64513,
				Address: netip.MustParseAddr("2001:db8::1"), Port: 1179,
				SourceAddress: netip.MustParseAddr("2001:db8::10"),
				HoldTime:      30 * time.Second, KeepaliveTime: 5 * time.Second, ConnectTime: time.Minute,
				EBGPMultiHop: true, GracefulRestart: true, MaxPrefixes: 500,
				PasswordSecret: &SecretRef{Namespace: DefaultPasswordNamespace, Name: "bgp-auth", Key: "password"},
				NodeSelectors:  Selectors{sel(t, "rack=1")},
				Families:       []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast, v1alpha1.IPv6Unicast},
			},
		},
		BGPAdvertisements: []BGPAdvertisement{{
			Namespace: ns, Name: "core", Pools: []string{"core"},
			AggregationLength: 24, AggregationLengthV6: 128, LocalPref: ptr[uint32](200),
			Communities:           []Community{StandardCommunity(65000, 100), {Value: 0xFFFFFF01}, LargeCommunity(64512, 1, 2)},
			Peers:                 []string{"r1"},
			ServiceSelectors:      Selectors{sel(t, "app=sbc")},
			RequireReadyEndpoints: true,
		}},
	}
	if diff := cmp.Diff(want, cfg, selectorCmp, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if _, err := allocator.New(allocator.Options{Pools: cfg.Pools}); err != nil {
		t.Errorf("allocator.New: %v", err)
	}
}

func TestParseDeterministic(t *testing.T) {
	objs := fullObjects()
	objs.Pools = append(objs.Pools, pool("z", "198.51.100.0/24", "bad"))
	objs.BGPPeers = append(objs.BGPPeers, peer("r0", "192.0.2.1"))
	_, err := Parse(objs)
	slices.Reverse(objs.Pools)
	slices.Reverse(objs.L2Advertisements)
	slices.Reverse(objs.BGPPeers)
	_, err2 := Parse(objs)
	if err == nil || err.Error() != err2.Error() {
		t.Errorf("Parse depends on input order:\n%v\n---\n%v", err, err2)
	}
}

func TestParseDoesNotModifyInput(t *testing.T) {
	objs := fullObjects()
	before := fullObjects()
	if _, err := Parse(objs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, objs); diff != "" {
		t.Errorf("Parse modified its input (-before +after):\n%s", diff)
	}
}

func TestSelectorsMatches(t *testing.T) {
	s := Selectors{labels.SelectorFromSet(labels.Set{"a": "1"}), labels.SelectorFromSet(labels.Set{"b": "2"})}
	for _, tc := range []struct {
		sels Selectors
		l    labels.Set
		want bool
	}{
		{nil, labels.Set{"x": "y"}, true},
		{s, labels.Set{"b": "2"}, true},
		{s, labels.Set{"a": "2"}, false},
	} {
		if got := tc.sels.Matches(tc.l); got != tc.want {
			t.Errorf("%v.Matches(%v) = %v, want %v", tc.sels, tc.l, got, tc.want)
		}
	}
}

func TestErrorsAndForObject(t *testing.T) {
	objs := Objects{
		Pools: []v1alpha1.IPAddressPool{pool("a", "198.51.100.0/24"), pool("b", "198.51.100.128/25"), pool("c", "bad")},
		L2Advertisements: []v1alpha1.L2Advertisement{
			l2("x", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"gone"}}),
		},
	}
	_, err := Parse(objs)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	overlap := perr(KindIPAddressPool, "b", "spec.addresses[0]",
		`"198.51.100.128/25" overlaps IPAddressPool pier-system/a spec.addresses[0] ("198.51.100.0/24")`, ref(KindIPAddressPool, "a"))
	bad := perr(KindIPAddressPool, "c", "spec.addresses[0]", `"bad" is not a CIDR or range`)
	dangling := perr(KindL2Advertisement, "x", "spec.ipAddressPools[0]", `IPAddressPool "gone" does not exist`, ref(KindIPAddressPool, "gone"))
	for _, tc := range []struct {
		kind, name string
		want       []*Error
	}{
		{KindIPAddressPool, "a", []*Error{overlap}},
		{KindIPAddressPool, "b", []*Error{overlap}},
		{KindIPAddressPool, "c", []*Error{bad}},
		{KindIPAddressPool, "gone", []*Error{dangling}},
		{KindL2Advertisement, "x", []*Error{dangling}},
		{KindL2Advertisement, "a", nil},
	} {
		if diff := cmp.Diff(tc.want, ForObject(err, tc.kind, ns, tc.name)); diff != "" {
			t.Errorf("ForObject(%s %s) (-want +got):\n%s", tc.kind, tc.name, diff)
		}
	}
	if diff := cmp.Diff([]*Error{overlap, bad, dangling}, Errors(err)); diff != "" {
		t.Errorf("Errors (-want +got):\n%s", diff)
	}
	if Errors(nil) != nil {
		t.Error("Errors(nil) is not nil")
	}
	if got, want := overlap.Error(), `IPAddressPool pier-system/b: spec.addresses[0]: "198.51.100.128/25" overlaps IPAddressPool pier-system/a spec.addresses[0] ("198.51.100.0/24")`; got != want {
		t.Errorf("Error() = %s, want %s", got, want)
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{&Error{Kind: KindBGPPeer, Namespace: ns, Name: "r1", Field: "spec.myASN", Message: "m"}, "BGPPeer pier-system/r1: spec.myASN: m"},
		{&Error{Kind: KindBGPPeer, Name: "r1", Message: "m"}, "BGPPeer r1: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	cfg, err := Parse(Objects{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Config{PoolLabels: map[string]map[string]string{}}, cfg); diff != "" {
		t.Errorf("Parse(empty) (-want +got):\n%s", diff)
	}
}
