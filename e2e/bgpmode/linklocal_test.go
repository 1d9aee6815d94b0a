package bgpmode

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
)

// TestLinkLocalPeer: a BGPPeer naming the router by its link-local address
// on the nodes' eth1, as unnumbered fabrics do (FRR knows each node by its
// link-local address on its own eth1). Every node's session comes up over
// fe80::, carries an IPv4 and an IPv6 Service, and the router installs
// both over every node (IPv6 via the nodes' link-local addresses, IPv4
// via their IPv4 addresses); a client reaches both through the router.
func TestLinkLocalPeer(t *testing.T) {
	const nodes = 2
	w := startPier(t, nodes)
	env := w.env
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	linkLocal := func(h *lab.Host) netip.Addr {
		var ll netip.Addr
		poll(t, h.Name+"'s link-local address", 10*time.Second, func() (err error) {
			ll, err = h.LinkLocal("eth1")
			return err
		})
		return ll
	}
	router := linkLocal(env.Site.Router)
	var neighbors []kubelab.Neighbor
	var nodeLL []string
	for _, h := range env.Site.Nodes {
		ll := linkLocal(h)
		nodeLL = append(nodeLL, ll.String())
		neighbors = append(neighbors, kubelab.Neighbor{Addr: ll, ASN: nodeASN, BothFamilies: true, Interface: "eth1"})
	}
	var err error
	if w.frr, err = env.StartFRR(ctx, t.TempDir(), routerASN, neighbors); err != nil {
		t.Fatal(err)
	}
	w.configureLinkLocal(router)
	env.StartEcho(t, binary(t, "pier-lab"), ":8443", ":8443")
	addr4 := w.createService("calls", "bgp", false)
	addr6 := w.createService("calls6", "bgp6", true)

	t.Run("sessions established over link-local addresses", func(t *testing.T) {
		poll(t, "BGPSessionStatus of every node", 60*time.Second, func() error {
			for i := 1; i <= nodes; i++ {
				st, err := w.sessionStatus("tor", i)
				if err != nil {
					return err
				}
				if st.Status.State != "Established" {
					return fmt.Errorf("node%d: %s (%s)", i, st.Status.State, st.Status.LastError)
				}
			}
			return nil
		})
	})

	t.Run("router installs both families over every node", func(t *testing.T) {
		for p, want := range map[netip.Prefix][]string{
			netip.PrefixFrom(addr6, 128): nodeLL,
			netip.PrefixFrom(addr4, 32):  {nodeAddr(1), nodeAddr(2)},
		} {
			want = slices.Sorted(slices.Values(want))
			poll(t, "zebra route "+p.String(), 60*time.Second, func() error {
				got, err := w.installedNextHops(p)
				slices.Sort(got)
				if err == nil && !slices.Equal(got, want) {
					err = fmt.Errorf("installed next hops %v, want %v", got, want)
				}
				return err
			})
		}
	})

	t.Run("client reaches both Services through the router", func(t *testing.T) {
		must(t, env.Site.Client.AddRoute(pool6, routerAddr6Client))
		for _, network := range []string{"tcp", "udp"} {
			kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(addr4, 8443))
			kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(addr6, 8443))
		}
	})
}

// configureLinkLocal installs pools "bgp" (203.0.113.0/25) and "bgp6"
// (pool6) and BGPPeer "tor": the router's link-local address on the
// nodes' eth1, both families, advertised to.
func (w *world) configureLinkLocal(router netip.Addr) {
	t, ctx, ns := w.t, context.Background(), kubelab.PierNamespace
	for name, cidr := range map[string]string{"bgp": "203.0.113.0/25", "bgp6": pool6.String()} {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{cidr}, AutoAssign: ptrBool(false)},
		}))
	}
	second := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d * time.Second} }
	must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor", Namespace: ns},
		Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: router.String(), Interface: "eth1",
			AddressFamilies: []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast, v1alpha1.IPv6Unicast},
			HoldTime:        second(3), KeepaliveTime: second(1), ConnectTime: second(1)}}))
	must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "tor", Namespace: ns},
		Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp", "bgp6"}, Peers: []string{"tor"}}}))
}
