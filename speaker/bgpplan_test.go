package speaker

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/speaker/bgp"
)

func bgpConfig(t *testing.T, advs ...v1alpha1.BGPAdvertisementSpec) *config.Config {
	t.Helper()
	objs := config.Objects{
		Pools: []v1alpha1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: "pier-system"},
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}}}},
		BGPPeers: []v1alpha1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: "pier-system"},
				Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "198.51.100.1",
					PasswordSecret: &v1alpha1.SecretKeyRef{Name: "md5"}, MaxPrefixes: 500}},
			{ObjectMeta: metav1.ObjectMeta{Name: "r2", Namespace: "pier-system"},
				Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "198.51.100.2",
					NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "b"}}}}},
		},
	}
	for i, a := range advs {
		objs.BGPAdvertisements = append(objs.BGPAdvertisements, v1alpha1.BGPAdvertisement{
			ObjectMeta: metav1.ObjectMeta{Name: string(rune('a' + i)), Namespace: "pier-system"}, Spec: a})
	}
	cfg, err := config.Parse(objs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBGPPlan(t *testing.T) {
	nodes := []corev1.Node{node("node1", map[string]string{"rack": "a"}), node("node2", map[string]string{"rack": "b"})}
	addr := netip.MustParseAddr("203.0.113.10")
	lp := int64(300)
	tests := []struct {
		name  string
		node  string
		advs  []v1alpha1.BGPAdvertisementSpec
		svc   corev1.Service
		ready map[string]bool
		want  []bgp.Path
	}{
		{"one /32 to every peer of the node", "node1", []v1alpha1.BGPAdvertisementSpec{{}},
			lbService("web", "203.0.113.10"), nil,
			[]bgp.Path{{Prefix: netip.PrefixFrom(addr, 32), Peers: []string{"r1"}}}},
		{"node2 has both peers", "node2", []v1alpha1.BGPAdvertisementSpec{{}},
			lbService("web", "203.0.113.10"), nil,
			[]bgp.Path{{Prefix: netip.PrefixFrom(addr, 32), Peers: []string{"r1", "r2"}}}},
		{"aggregation and attributes merge", "node2", []v1alpha1.BGPAdvertisementSpec{
			{AggregationLength: ptrTo(int32(24)), Communities: []string{"64512:100"}, Peers: []string{"r2"}},
			{AggregationLength: ptrTo(int32(24)), LocalPref: &lp, Communities: []string{"large:64512:1:2"}, Peers: []string{"r1"}},
		}, lbService("web", "203.0.113.10"), nil,
			[]bgp.Path{{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Peers: []string{"r1", "r2"},
				LocalPref: ptrTo(uint32(300)), Communities: []uint32{64512<<16 | 100}, LargeCommunities: [][3]uint32{{64512, 1, 2}}}}},
		{"node selector leaves node1 out", "node1", []v1alpha1.BGPAdvertisementSpec{
			{NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "b"}}}}},
			lbService("web", "203.0.113.10"), nil, nil},
		{"externalTrafficPolicy Local without a local endpoint", "node1", []v1alpha1.BGPAdvertisementSpec{{}},
			localService("web", "203.0.113.10"), map[string]bool{"node2": true}, nil},
		{"externalTrafficPolicy Local with one", "node2", []v1alpha1.BGPAdvertisementSpec{{}},
			localService("web", "203.0.113.10"), map[string]bool{"node2": true},
			[]bgp.Path{{Prefix: netip.PrefixFrom(addr, 32), Peers: []string{"r1", "r2"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{Config: bgpConfig(t, tc.advs...), Services: []corev1.Service{tc.svc}, Nodes: nodes}
			if tc.ready != nil {
				in.EndpointSlices = []discoveryv1.EndpointSlice{slice("web", tc.ready)}
			}
			got := BGPPlan(in, tc.node, map[string]string{"pier-bgp-passwords/md5/password": "s3cret"})
			if diff := cmp.Diff(tc.want, got.Paths, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if len(got.Peers) == 0 || got.Peers[0].Password != "s3cret" || got.Peers[0].MaxPrefixes != 500 {
				t.Errorf("peer r1 without its password from the Secret or its maxPrefixes 500: %+v", got.Peers)
			}
		})
	}
}

func localService(name, addr string) corev1.Service {
	s := lbService(name, addr)
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	return s
}

func ptrTo[T any](v T) *T { return &v }

func TestCrossFamilyNextHops(t *testing.T) {
	v4, v6 := bgp.IPv4Unicast, bgp.IPv6Unicast
	peer4, peer6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:100::1")
	addrs := func(as ...string) corev1.Node {
		var n corev1.Node
		for _, a := range as {
			typ, ip, _ := strings.Cut(a, "=")
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeAddressType(typ), Address: ip})
		}
		return n
	}
	dual := addrs("Hostname=node1", "InternalIP=fe80::1", "InternalIP=198.51.100.11", "InternalIP=::ffff:198.51.100.12",
		"InternalIP=2001:db8:100::11", "InternalIP=2001:db8:100::99")
	tests := []struct {
		name         string
		addr         netip.Addr
		families     []bgp.Family
		node         corev1.Node
		wantV4, want string
	}{
		{"IPv4 session, IPv4 only: none", peer4, []bgp.Family{v4}, dual, "", ""},
		{"IPv6 session, IPv6 only: none", peer6, []bgp.Family{v6}, dual, "", ""},
		{"IPv6 over IPv4: the first global IPv6 InternalIP", peer4, []bgp.Family{v4, v6}, dual, "", "2001:db8:100::11"},
		{"IPv4 over IPv6: the first IPv4 InternalIP", peer6, []bgp.Family{v6, v4}, dual, "198.51.100.11", ""},
		{"ExternalIP when no InternalIP of the family", peer4, []bgp.Family{v4, v6},
			addrs("ExternalIP=2001:db8:200::5", "InternalIP=198.51.100.11"), "", "2001:db8:200::5"},
		{"IPv4-only node: no IPv6 next hop", peer4, []bgp.Family{v4, v6},
			addrs("InternalIP=198.51.100.11", "InternalIP=fe80::1"), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := bgp.Peer{Name: "r", Address: tc.addr, Families: tc.families}
			setCrossNextHops(&p, &tc.node)
			got := [2]string{str(p.NextHop4), str(p.NextHop6)}
			if diff := cmp.Diff([2]string{tc.wantV4, tc.want}, got); diff != "" {
				t.Errorf("next hops v4, v6 (-want +got):\n%s", diff)
			}
		})
	}
}

func str(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// TestBGPPlanIPv6OverIPv4 goes through the CRD parsing: a BGPPeer with an
// IPv4 address and both families gets the node's IPv6 address as next hop
// of its IPv6 paths.
func TestBGPPlanIPv6OverIPv4(t *testing.T) {
	objs := config.Objects{
		Pools: []v1alpha1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "v6", Namespace: "pier-system"},
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"2001:db8:203::/120"}}}},
		BGPPeers: []v1alpha1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: "pier-system"},
			Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "198.51.100.1",
				AddressFamilies: []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast, v1alpha1.IPv6Unicast}}}},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "pier-system"}}},
	}
	cfg, err := config.Parse(objs)
	if err != nil {
		t.Fatal(err)
	}
	n := node("node1", nil)
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.11"},
		{Type: corev1.NodeInternalIP, Address: "2001:db8:100::11"}}
	in := Inputs{Config: cfg, Nodes: []corev1.Node{n}, Services: []corev1.Service{lbService("web", "2001:db8:203::5")}}
	got := BGPPlan(in, "node1", nil)
	if len(got.Peers) != 1 || got.Peers[0].NextHop6 != netip.MustParseAddr("2001:db8:100::11") || got.Peers[0].NextHop4.IsValid() {
		t.Fatalf("peers %+v, want r1 with IPv6 next hop 2001:db8:100::11 and none for IPv4", got.Peers)
	}
	if len(got.Paths) != 1 || got.Paths[0].Prefix != netip.MustParsePrefix("2001:db8:203::5/128") {
		t.Errorf("paths %+v, want the /128", got.Paths)
	}
}

// externalTrafficPolicy Local: a node without a local endpoint reports
// the Service as withheld only while no endpoint is ready anywhere.
func TestBGPPlanWithheldLocal(t *testing.T) {
	nodes := []corev1.Node{node("node1", map[string]string{"rack": "a"}), node("node2", map[string]string{"rack": "b"})}
	addr := netip.MustParseAddr("203.0.113.10")
	for _, tc := range []struct {
		name  string
		ready map[string]bool
		want  []BGPSource
	}{
		{"none ready: withheld, with the path it would add", map[string]bool{"node2": false},
			[]BGPSource{{Addr: addr, Service: "default/web", Paths: []bgp.Path{{Prefix: netip.PrefixFrom(addr, 32), Peers: []string{"r1"}}},
				Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints}}},
		{"ready on node2: nothing on node1", map[string]bool{"node2": true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Inputs{Config: bgpConfig(t, v1alpha1.BGPAdvertisementSpec{}), Services: []corev1.Service{localService("web", "203.0.113.10")},
				Nodes: nodes, EndpointSlices: []discoveryv1.EndpointSlice{slice("web", tc.ready)}}
			got := BGPPlan(in, "node1", map[string]string{"pier-bgp-passwords/md5/password": "s3cret"})
			if diff := cmp.Diff(tc.want, got.Sources, addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			if len(got.Paths)+len(got.Addrs) != 0 {
				t.Errorf("paths %v, addresses %v: want none announced", got.Paths, got.Addrs)
			}
		})
	}
}
