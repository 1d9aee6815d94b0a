package podlab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/podlab"
	"github.com/pier-lb/pier/e2e/prereq"
	"github.com/pier-lb/pier/e2e/scenario"
)

const (
	bgpRouterASN = 64512
	bgpNodeASN   = 64513
	bgpName      = "bgp" // the pool's, peer's and advertisement's name
	bgpService   = "media-bgp"
)

// bgpPool is the BGP pool, inside the range the lab's client routes
// through the router (lab.BGPRange).
var bgpPool = netip.MustParsePrefix("203.0.113.64/28")

// bgpRouterAddr is the router's address on the segment (its first).
var bgpRouterAddr = lab.SegmentV4.Addr().Next()

// bgpECMP is the BGP scenario through the chart-installed Pier: FRR on the
// router, the nodes' speakers (hostNetwork Pods, peering from their
// InternalIP on the segment) as its neighbors. A user adds a BGP pool, a
// BGPPeer and a BGPAdvertisement, then a Service asking for the pool: FRR
// gets its /32 with a next hop per node, a call through it is answered,
// and when the user removes it all again the route is withdrawn and the
// session statuses are gone.
func bgpECMP(t *testing.T, e *podlab.Env) {
	ctx := context.Background()
	requireFRR(t)
	if !lab.BGPRange.Contains(bgpPool.Addr()) {
		t.Fatalf("pool %s outside the lab's BGP range %s", bgpPool, lab.BGPRange)
	}
	neighbors := e.NodeNeighbors(bgpNodeASN, false)
	var nodeIPs []string
	for i, n := range e.Nodes {
		if neighbors[i].Addr != n.IP {
			t.Fatalf("FRR neighbor %s is not node %s's InternalIP %s", neighbors[i].Addr, n.Name, n.IP)
		}
		nodeIPs = append(nodeIPs, n.IP.String())
	}
	frr, err := e.StartFRR(ctx, t.TempDir(), bgpRouterASN, neighbors)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := podlab.StopFRR(frr); err != nil {
			t.Errorf("stop FRR: %v", err)
		}
	})
	configureBGP(t, e)
	waitEstablished(t, e, frr, nodeIPs)

	start := time.Now()
	addr, err := e.CreatePoolCallService(ctx, "voice", bgpService, "media", bgpName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteIfThere(t, e, bgpServiceObject()) })
	assigned := time.Since(start)
	if !bgpPool.Contains(addr) {
		t.Fatalf("Service voice/%s got %s, want one of pool %s", bgpService, addr, bgpPool)
	}
	route := netip.PrefixFrom(addr, 32)
	// The BGP scenario the kind lab runs too (e2e/scenario): the route
	// from every node, a request through the router answered.
	bgp, err := scenario.CheckBGP(ctx, e.ScenarioSite(frr), scenario.Service{Namespace: "voice", Name: bgpService, Pool: bgpName})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bgp.NextHops, slices.Sorted(slices.Values(nodeIPs))) {
		t.Fatalf("%s: next hops %v, want the lab's nodes %v", route, bgp.NextHops, nodeIPs)
	}
	t.Logf("%s: address after %v, at FRR with next hops %v and %s reached through it after %v", route, assigned.Round(time.Millisecond),
		bgp.NextHops, bgp.Backend, time.Since(start).Round(time.Millisecond))

	// A node forwards the address once kube-proxy has its rules there:
	// logged, as the route at FRR may come first.
	waitKubeProxy(t, e, addr)
	t.Logf("%s in kube-proxy's rules on every node after %v", addr, time.Since(start).Round(time.Millisecond))

	call, err := podlab.StartCall(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		t.Fatal(err)
	}
	called := time.Now()
	waitAnswers(t, call, 1)
	t.Logf("call through %s: first answer %v after the call started (%v after the Service was created)", addr,
		time.Since(called).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	waitAnswers(t, call, 50)
	t.Logf("call through %s: %v", addr, call.Stop())

	if err := e.Pier.Delete(ctx, bgpServiceObject()); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	waitNextHops(t, frr, route, nil)
	t.Logf("%s withdrawn at FRR %v after the Service was deleted", route, time.Since(deleted).Round(time.Millisecond))

	for _, obj := range bgpObjects() {
		if err := e.Pier.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	waitBGPGone(t, e, frr, nodeIPs)
	if hops, err := frr.NextHops(route); err != nil || len(hops) > 0 {
		t.Errorf("%s at FRR after the BGP objects were deleted: %v (%v)", route, hops, err)
	}
}

// waitKubeProxy waits until kube-proxy's nftables table on every node
// names addr.
func waitKubeProxy(t testing.TB, e *podlab.Env, addr netip.Addr) {
	t.Helper()
	lab.Poll(t, fmt.Sprintf("%s in kube-proxy's rules", addr), 100*time.Millisecond, time.Minute, func() error {
		for _, n := range e.Nodes {
			out, err := n.Host.Run(context.Background(), "nft", "list", "table", "ip", "kube-proxy")
			if err != nil {
				return err
			}
			if !strings.Contains(out, addr.String()) {
				return fmt.Errorf("not on %s", n.Name)
			}
		}
		return nil
	})
}

func requireFRR(t testing.TB) {
	t.Helper()
	prereq.Tools(t, "vtysh")
	for _, d := range []string{"/usr/lib/frr/bgpd", "/usr/lib/frr/zebra"} {
		if _, err := os.Stat(d); err != nil {
			prereq.Missing(t, "needs %s (hack/deps.sh installs frr)", d)
		}
	}
}

// bgpObjects are the BGP pool (not auto-assigned, so that only Services
// asking for it get its addresses), a peer to the router and an
// advertisement of the pool, as a user would write them after install.
func bgpObjects() []client.Object {
	meta := metav1.ObjectMeta{Name: bgpName, Namespace: podlab.Namespace}
	return []client.Object{
		&v1alpha1.BGPAdvertisement{ObjectMeta: meta, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{bgpName}}},
		&v1alpha1.BGPPeer{ObjectMeta: meta, Spec: v1alpha1.BGPPeerSpec{
			MyASN: bgpNodeASN, PeerASN: bgpRouterASN, PeerAddress: bgpRouterAddr.String()}},
		&v1alpha1.IPAddressPool{ObjectMeta: meta, Spec: v1alpha1.IPAddressPoolSpec{
			Addresses: []string{bgpPool.String()}, AutoAssign: ptr.To(false)}},
	}
}

func bgpServiceObject() client.Object {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: bgpService, Namespace: "voice"}}
}

func configureBGP(t *testing.T, e *podlab.Env) {
	t.Helper()
	objs := bgpObjects()
	for i := len(objs) - 1; i >= 0; i-- { // pool first
		if err := e.Pier.Create(context.Background(), objs[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteIfThere(t, e, objs[i]) })
	}
}

// deleteIfThere removes what a failed run left, so that the steps after
// it (and the uninstall's check) start clean.
func deleteIfThere(t testing.TB, e *podlab.Env, obj client.Object) {
	if err := client.IgnoreNotFound(e.Pier.Delete(context.Background(), obj)); err != nil {
		t.Logf("delete %T %s: %v", obj, obj.GetName(), err)
	}
}

// waitEstablished waits until FRR has an established session with every
// node and every node's speaker says so in its BGPSessionStatus.
func waitEstablished(t testing.TB, e *podlab.Env, frr *kubelab.FRR, nodeIPs []string) {
	t.Helper()
	lab.Poll(t, "sessions established", 100*time.Millisecond, 2*time.Minute, func() error {
		ns, err := frr.Neighbors()
		if err != nil {
			return err
		}
		for _, ip := range nodeIPs {
			if ns[ip].BGPState != "Established" {
				return fmt.Errorf("FRR: %s is %q", ip, ns[ip].BGPState)
			}
		}
		states, err := sessionStates(e)
		if err != nil {
			return err
		}
		if len(states) != len(nodeIPs) {
			return fmt.Errorf("BGPSessionStatuses: %v, want one per node", states)
		}
		for node, st := range states {
			if st != "Established" {
				return fmt.Errorf("BGPSessionStatus of %s: %s", node, st)
			}
		}
		return nil
	})
}

// waitBGPGone waits until FRR has no established session left and the
// speakers deleted their BGPSessionStatuses.
func waitBGPGone(t testing.TB, e *podlab.Env, frr *kubelab.FRR, nodeIPs []string) {
	t.Helper()
	lab.Poll(t, "sessions gone", 100*time.Millisecond, 2*time.Minute, func() error {
		ns, err := frr.Neighbors()
		if err != nil {
			return err
		}
		for _, ip := range nodeIPs {
			if ns[ip].BGPState == "Established" {
				return fmt.Errorf("FRR: %s still established", ip)
			}
		}
		states, err := sessionStates(e)
		if err == nil && len(states) > 0 {
			err = fmt.Errorf("BGPSessionStatuses left: %v", states)
		}
		return err
	})
}

// sessionStates are the states of the BGPSessionStatuses of the peer, by
// node.
func sessionStates(e *podlab.Env) (map[string]string, error) {
	var list v1alpha1.BGPSessionStatusList
	err := e.Pier.List(context.Background(), &list, client.InNamespace(podlab.Namespace),
		client.MatchingLabels{v1alpha1.LabelBGPPeer: bgpName})
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Status.Node] = s.Status.State
	}
	return out, err
}

// waitNextHops waits until FRR's route for p has exactly the next hops
// want, in any order (none: no route).
func waitNextHops(t testing.TB, frr *kubelab.FRR, p netip.Prefix, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	lab.Poll(t, fmt.Sprintf("FRR next hops of %s", p), 100*time.Millisecond, 2*time.Minute, func() error {
		got, err := frr.NextHops(p)
		slices.Sort(got)
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("next hops %v, want %v", got, want)
		}
		return err
	})
}
