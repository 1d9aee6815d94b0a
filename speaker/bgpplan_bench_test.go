package speaker

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// BenchmarkBGPPlan: this node's BGP plan for 20,000 Services of one BGP
// pool (the work of one API change on a BGP speaker).
func BenchmarkBGPPlan(b *testing.B) {
	cfg, err := config.Parse(config.Objects{
		Pools: []v1alpha1.IPAddressPool{{ObjectMeta: metaNS("bgp", "pier-system"),
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/16"}}}},
		BGPPeers: []v1alpha1.BGPPeer{{ObjectMeta: metaNS("r1", "pier-system"),
			Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1"}}},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{{ObjectMeta: metaNS("bgp", "pier-system"),
			Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	in := Inputs{Config: cfg, Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}}}
	for i := range 20000 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		in.Services = append(in.Services, lbService(fmt.Sprintf("s%05d", i), a.String()))
	}
	b.ResetTimer()
	for b.Loop() {
		if d := BGPPlan(in, "node1", nil); len(d.Addrs) != 20000 {
			b.Fatalf("%d addresses", len(d.Addrs))
		}
	}
}
