package speaker

import (
	"net/netip"
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
					PasswordSecret: &v1alpha1.SecretKeyRef{Name: "md5"}}},
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
			got := BGPPlan(in, tc.node, map[string]string{"pier-system/md5/password": "s3cret"})
			if diff := cmp.Diff(tc.want, got.Paths, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if len(got.Peers) == 0 || got.Peers[0].Password != "s3cret" {
				t.Errorf("peer r1 without its password from the Secret: %+v", got.Peers)
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
