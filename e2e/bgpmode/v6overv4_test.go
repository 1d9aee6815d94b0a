package bgpmode

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// TestIPv6OverIPv4Session: one eBGP session per node over IPv4 carries both
// families (FRR activates ipv6 unicast on the IPv4 neighbors). The IPv6
// Service's /128 must reach FRR with each node's global IPv6 address as
// next hop (not the session's IPv4 address, nor ::ffff:a.b.c.d), be
// installed by zebra, and carry a client's TCP and UDP through the router;
// the IPv4 Service on the same sessions keeps the IPv4 next hops.
// Symmetrically, an iBGP session per node over IPv6 carries both families
// and a Service of pool "via6" advertised only to it: FRR must get that
// IPv4 /32 with the nodes' IPv4 addresses as next hops.
func TestIPv6OverIPv4Session(t *testing.T) {
	w := startPier(t, 3)
	env := w.env
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	neighbors := append(env.NodeNeighbors(nodeASN, false), env.NodeNeighbors(routerASN, true)...)
	for i := range neighbors {
		neighbors[i].BothFamilies = true
	}
	if w.frr, err = env.StartFRR(ctx, t.TempDir(), routerASN, neighbors); err != nil {
		t.Fatal(err)
	}
	w.configureDualOverV4()
	env.StartEcho(t, binary(t, "pier-lab"), ":8443", ":8443")
	addr4 := w.createService("calls", "bgp", false)
	addr6 := w.createService("calls6", "bgp6", true)
	via6 := w.createService("via6", "via6", false)

	t.Run("IPv6 next hops are the nodes' IPv6 addresses", func(t *testing.T) {
		w.t = t
		w.wantNextHops(netip.PrefixFrom(addr6, 128), []string{nodeAddr6(1), nodeAddr6(2), nodeAddr6(3)}, 60*time.Second)
		w.wantNextHops(netip.PrefixFrom(addr4, 32), allNodes(), 30*time.Second)
		for i := 1; i <= 3; i++ {
			sent := w.frrReceived(nodeAddr(i))
			if sent != [2]int{1, 1} {
				t.Errorf("FRR received from node%d over its IPv4 session: %d IPv4 and %d IPv6 prefixes, want 1 and 1", i, sent[0], sent[1])
			}
		}
	})

	t.Run("zebra installs the IPv6 route over every node", func(t *testing.T) {
		w.t = t
		want := []string{nodeAddr6(1), nodeAddr6(2), nodeAddr6(3)}
		poll(t, "zebra route "+addr6.String(), 30*time.Second, func() error {
			got, err := w.installedNextHops(netip.PrefixFrom(addr6, 128))
			slices.Sort(got)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("installed next hops %v, want %v", got, want)
			}
			return err
		})
	})

	t.Run("client reaches the IPv6 Service through the router", func(t *testing.T) {
		w.t = t
		must(t, env.Site.Client.AddRoute(pool6, routerAddr6Client))
		for _, network := range []string{"tcp", "udp"} {
			kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(addr6, 8443))
			kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(addr4, 8443))
		}
	})

	t.Run("IPv4 over an IPv6 session: the nodes' IPv4 addresses", func(t *testing.T) {
		w.t = t
		p := netip.PrefixFrom(via6, 32)
		w.wantNextHops(p, allNodes(), 60*time.Second)
		poll(t, "zebra route "+p.String(), 30*time.Second, func() error {
			got, err := w.installedNextHops(p)
			slices.Sort(got)
			if want := allNodes(); err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("installed next hops %v, want %v", got, want)
			}
			return err
		})
		for i := 1; i <= 3; i++ {
			if sent := w.frrReceived(nodeAddr6(i)); sent != [2]int{1, 0} {
				t.Errorf("FRR received from node%d over its IPv6 session: %d IPv4 and %d IPv6 prefixes, want 1 and 0", i, sent[0], sent[1])
			}
		}
		for _, network := range []string{"tcp", "udp"} {
			kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(via6, 8443))
		}
	})
}

// configureDualOverV4 installs pools "bgp" (203.0.113.0/25), "bgp6"
// (pool6) and "via6" (203.0.113.128/26); BGPPeers "frr" (eBGP over IPv4)
// and "frr6" (iBGP over IPv6), both carrying both families; "bgp" and
// "bgp6" are advertised to frr only, "via6" to frr6 only.
func (w *world) configureDualOverV4() {
	t, ctx, ns := w.t, context.Background(), kubelab.PierNamespace
	pools := map[string]string{"bgp": "203.0.113.0/25", "bgp6": pool6.String(), "via6": "203.0.113.128/26"}
	for name, cidr := range pools {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{cidr}, AutoAssign: ptrBool(false)},
		}))
	}
	both := []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast, v1alpha1.IPv6Unicast}
	peers := map[string]v1alpha1.BGPPeerSpec{
		"frr":  {MyASN: nodeASN, PeerASN: routerASN, PeerAddress: "198.51.100.1", AddressFamilies: both},
		"frr6": {MyASN: routerASN, PeerASN: routerASN, PeerAddress: routerAddr6.String(), AddressFamilies: both},
	}
	for name, spec := range peers {
		spec.HoldTime, spec.KeepaliveTime = &metav1.Duration{Duration: 3 * time.Second}, &metav1.Duration{Duration: time.Second}
		spec.ConnectTime = &metav1.Duration{Duration: time.Second}
		must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}))
	}
	advs := map[string]v1alpha1.BGPAdvertisementSpec{
		"both": {IPAddressPools: []string{"bgp", "bgp6"}, Peers: []string{"frr"}},
		"via6": {IPAddressPools: []string{"via6"}, Peers: []string{"frr6"}},
	}
	for name, spec := range advs {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}))
	}
}

// frrReceived is how many IPv4 and IPv6 prefixes FRR has from neighbor
// addr.
func (w *world) frrReceived(addr string) [2]int {
	var out [2]int
	for i, fam := range []string{"ipv4", "ipv6"} {
		var n map[string]struct {
			AddressFamilyInfo map[string]struct {
				AcceptedPrefixCounter int `json:"acceptedPrefixCounter"`
			} `json:"addressFamilyInfo"`
		}
		if err := w.frr.JSON("show bgp neighbors "+addr+" json", &n); err != nil {
			w.t.Fatal(err)
		}
		for name, af := range n[addr].AddressFamilyInfo {
			if strings.HasPrefix(strings.ToLower(name), fam) {
				out[i] = af.AcceptedPrefixCounter
			}
		}
	}
	return out
}

// installedNextHops are the next hops of zebra's selected route for p that
// are in the kernel's FIB.
func (w *world) installedNextHops(p netip.Prefix) ([]string, error) {
	family := "ip"
	if p.Addr().Is6() {
		family = "ipv6"
	}
	var routes map[string][]struct {
		Protocol  string `json:"protocol"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP  string `json:"ip"`
			FIB bool   `json:"fib"`
		} `json:"nexthops"`
	}
	if err := w.frr.JSON("show "+family+" route "+p.String()+" json", &routes); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range routes[p.String()] {
		if r.Protocol != "bgp" || !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if nh.FIB {
				out = append(out, nh.IP)
			}
		}
	}
	return out, nil
}
