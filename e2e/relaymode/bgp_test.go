package relaymode

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/prereq"
)

const (
	routerASN = 64512
	nodeASN   = 64513
	bgpTCP    = 8445
	bgpUDP    = 16387
)

// TestBGP: the Relay's address comes from a BGP pool (203.0.113.0/24) and
// every node announces it to FRR on the router, which spreads flows over
// the three nodes (ECMP, hashing addresses and ports). Whichever node a
// flow lands on, its relay sends it to the server Maglev picks, and the
// flow keeps its node and its server.
func TestBGP(t *testing.T) {
	prereq.Root(t)
	prereq.Tools(t, "vtysh")
	for _, d := range []string{"/usr/lib/frr/bgpd", "/usr/lib/frr/zebra"} {
		if _, err := os.Stat(d); err != nil {
			prereq.Missing(t, "needs %s (hack/deps.sh installs frr)", d)
		}
	}
	s := up(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	frr, err := s.env.StartFRR(ctx, t.TempDir(), routerASN, s.env.NodeNeighbors(nodeASN, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(frr.Close)
	// Hash flows by ports too (the default hashes addresses only, which
	// would send every flow of the one client to one node).
	if err := s.env.Site.Router.Sysctl("net.ipv4.fib_multipath_hash_policy", "1"); err != nil {
		t.Fatal(err)
	}
	pier := kubelab.PierNamespace
	for _, o := range []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: pier},
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}, AutoAssign: ptr.To(false)}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router", Namespace: pier},
			Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: "198.51.100.1"}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: pier},
			Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}},
	} {
		if err := s.env.Pier.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	// Its own ports: every node's relays bind the wildcard address, so
	// Relays on the same nodes need distinct ports.
	r := callsRelay()
	r.Name = "calls-bgp"
	r.Spec.Listeners = []v1alpha1.RelayListener{
		{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: bgpTCP},
		{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: bgpUDP},
	}
	r.Spec.Exposure = v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer,
		ServiceAnnotations: map[string]string{v1alpha1.AnnotationAddressPool: "bgp"}}
	addr := s.createRelay(t, r)[0]
	if !netip.MustParsePrefix("203.0.113.0/24").Contains(addr) {
		t.Fatalf("relay calls-bgp got %s, want an address of pool bgp", addr)
	}
	var hops []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		hops, _ = frr.NextHops(netip.PrefixFrom(addr, 32))
		return len(hops) == len(s.env.Site.Nodes), nil
	})
	if err != nil {
		t.Fatalf("FRR routes %s via %v, want every node", addr, hops)
	}
	slices.Sort(hops)
	// Flows are hashed over the kernel's route, which zebra installs after
	// BGP has the paths: wait for its three next hops too.
	var route string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		route, _ = s.env.Site.Router.Run(ctx, "ip", "route", "show", addr.String())
		return strings.Count(route, "nexthop via") == len(s.env.Site.Nodes), nil
	})
	if err != nil {
		t.Fatalf("the router's kernel route for %s: %q, want a next hop per node", addr, route)
	}
	t.Logf("FRR routes %s via %v (ECMP)", addr, hops)

	cl := s.env.Site.Client
	src := &ports{next: 20000}
	dst := netip.AddrPortFrom(addr, bgpUDP)

	t.Run("flows over every node reach their Maglev owner and stay", func(t *testing.T) {
		var flows []placed
		byNode := map[netip.Addr]int{}
		vias := map[netip.AddrPort]netip.Addr{}
		for range 60 {
			f := newFlow(t, cl, netip.AddrPortFrom(clientLike(addr), src.take()))
			w := f.mustAsk(t, dst, "ecmp")
			if want := owner(t, f.src, servers...); w.Name != want {
				t.Fatalf("flow %s came through %s to %s, want the Maglev owner %s", f.src, w.Client.Addr(), w.Name, want)
			}
			flows = append(flows, placed{f, w.Name})
			vias[f.src] = w.Client.Addr()
			byNode[w.Client.Addr()]++
		}
		t.Logf("60 flows by relaying node: %v; by server: %v", byNode, count(flows))
		if len(byNode) != len(s.env.Site.Nodes) { // 60 flows miss a node with odds of about 1e-10
			t.Errorf("flows came through %v, want the router to spread them over every node", byNode)
		}
		// The flow keeps its server whatever node the router picks (a
		// node change, the router's doing, is only logged).
		for _, f := range flows {
			for i := range 5 {
				w := f.mustAsk(t, dst, "again")
				if w.Name != f.server {
					t.Fatalf("flow %s datagram %d: %s through %s, was %s through %s", f.src, i, w.Name, w.Client.Addr(), f.server, vias[f.src])
				}
				if w.Client.Addr() != vias[f.src] {
					t.Logf("flow %s datagram %d came through %s, the first through %s (same server %s)", f.src, i, w.Client.Addr(), vias[f.src], w.Name)
					vias[f.src] = w.Client.Addr()
				}
			}
		}
	})

	t.Run("TCP sessions reach their Maglev owner", func(t *testing.T) {
		got := map[string]int{}
		for _, ss := range openSessions(t, cl, netip.AddrPortFrom(addr, bgpTCP), 30, servers...) {
			if err := ss.alive(); err != nil {
				t.Error(err)
			}
			got[ss.server]++
		}
		t.Logf("30 TCP sessions: %v", got)
	})
}
