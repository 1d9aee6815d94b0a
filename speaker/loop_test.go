package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
)

// loopSeg is the segment every test node is on.
var loopSeg = []Iface{{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}

// loopAPI is an API cache holding an L2 pool of claimAddrs, a BGP pool,
// one BGP peer, the nodes named and one Service per address of
// claimAddrs and of bgpAddrs; while down is set, every read fails (the
// API server unreachable).
func loopAPI(t *testing.T, down *atomic.Bool, bgpAddrs []string, nodes ...string) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		mustDo(t, add(scheme))
	}
	objs := []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metaNS("l2", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.200-198.51.100.250"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metaNS("l2", "pier-system"), Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}},
		&v1alpha1.IPAddressPool{ObjectMeta: metaNS("bgp", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metaNS("bgp", "pier-system"), Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}},
		&v1alpha1.BGPPeer{ObjectMeta: metaNS("r1", "pier-system"), Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1"}},
	}
	for _, n := range nodes {
		nd := node(n, nil)
		objs = append(objs, &nd)
	}
	for i, a := range claimAddrs() {
		svc := lbService(fmt.Sprintf("claim-%02d", i), a.String())
		objs = append(objs, &svc)
	}
	for i, a := range bgpAddrs {
		svc := lbService(fmt.Sprintf("routed-%02d", i), a)
		objs = append(objs, &svc)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithInterceptorFuncs(interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if down.Load() {
					return errors.New("dial tcp 192.0.2.10:6443: connect: connection refused")
				}
				return c.List(ctx, list, opts...)
			},
		}).Build()
}

// loopNode is one node's speaker over fakes.
type loopNode struct {
	s   *Speaker
	mem *FakeMembers
	l2  *FakeL2
	bgp *FakeBGP
	vip *FakeVIP
}

// newLoopNode is name's speaker reading c, its view holding the members
// named (each on loopSeg), settled; synced reports whether the API cache
// ever synced; more, if not nil, sets further options.
func newLoopNode(t *testing.T, name string, c client.Client, synced func() bool, stateFile string, more func(*Options), live ...string) *loopNode {
	t.Helper()
	n := &loopNode{mem: NewFakeMembers(live...), l2: &FakeL2{}, bgp: &FakeBGP{}, vip: &FakeVIP{}}
	meta, err := EncodeIfaces(loopSeg)
	mustDo(t, err)
	for _, m := range live {
		n.mem.SetMetaOf(m, meta)
	}
	n.mem.Settle()
	opts := Options{
		NodeName: name, Namespace: "pier-system", Reader: c, Synced: synced,
		Members: n.mem, L2: n.l2, BGP: n.bgp, VIP: n.vip,
		Interfaces: func() ([]Iface, error) { return loopSeg, nil },
		StateFile:  stateFile,
	}
	if more != nil {
		more(&opts)
	}
	n.s, err = New(opts)
	mustDo(t, err)
	return n
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// Every address goes to the member the election picks among the live
// ones: when one leaves, each of its addresses moves to the survivor the
// election names and no other address moves; when it returns, it gets
// back what it had.
func TestOwnershipFollowsMembers(t *testing.T) {
	var down atomic.Bool
	all := []string{"node1", "node2", "node3"}
	c := loopAPI(t, &down, nil, all...)
	ctx := context.Background()
	nodes := map[string]*loopNode{}
	for _, n := range all {
		nodes[n] = newLoopNode(t, n, c, func() bool { return true }, "", nil, all...)
	}
	// owners is who among live announces each address, read from the
	// fakes; an address announced twice is an error.
	owners := func(live ...string) map[netip.Addr]string {
		out := map[netip.Addr]string{}
		for _, name := range live {
			for _, a := range lastL2(nodes[name].l2) {
				if other, dup := out[a.Addr]; dup && other != name {
					t.Errorf("%s announced by %s and %s", a.Addr, other, name)
				}
				out[a.Addr] = name
			}
		}
		return out
	}
	elected := func(live ...string) map[netip.Addr]string {
		out := map[netip.Addr]string{}
		for _, a := range claimAddrs() {
			out[a] = members.Owner(a, live)
		}
		return out
	}
	pass := func(live ...string) {
		for _, name := range live {
			nodes[name].mem.SetLive(live...)
			nodes[name].s.sync(ctx)
		}
	}

	pass(all...)
	before := owners(all...)
	if diff := cmp.Diff(elected(all...), before, addrCmp); diff != "" {
		t.Fatalf("all three live (-want +got):\n%s", diff)
	}

	pass("node1", "node3") // node2 is gone
	after := owners("node1", "node3")
	if diff := cmp.Diff(elected("node1", "node3"), after, addrCmp); diff != "" {
		t.Errorf("node2 left (-want +got):\n%s", diff)
	}
	moved := 0
	for a, was := range before {
		switch {
		case was == "node2":
			moved++
		case after[a] != was:
			t.Errorf("%s moved from %s to %s though its owner stayed", a, was, after[a])
		}
	}
	if moved == 0 {
		t.Fatal("node2 owned nothing: the test proves nothing")
	}

	reannounced := nodes["node1"].l2.Reannounced()
	pass(all...)
	if diff := cmp.Diff(before, owners(all...), addrCmp); diff != "" {
		t.Errorf("node2 back (-want +got):\n%s", diff)
	}
	if nodes["node1"].l2.Reannounced() != reannounced+1 {
		t.Error("node1 did not re-announce what it keeps when node2 came back")
	}
}

// While the API server is unreachable the speaker keeps announcing what
// it announced (L2, BGP, local addresses) and still follows the members
// over its last targets; a speaker restarted during the outage announces
// the same from its state file.
func TestOutageKeepsAnnouncing(t *testing.T) {
	var down atomic.Bool
	c := loopAPI(t, &down, []string{"203.0.113.10"}, "node1", "node2", "node3")
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	ctx := context.Background()
	n := newLoopNode(t, "node1", c, func() bool { return true }, file, nil, "node1", "node2")
	n.s.sync(ctx)
	want := announcedBy(n)
	if len(want.l2) == 0 || len(want.paths) == 0 || len(want.peers) == 0 || !slices.Contains(want.vips, netip.MustParseAddr("203.0.113.10")) {
		t.Fatalf("nothing to keep: %+v", want)
	}

	down.Store(true)
	for i := range 3 {
		n.s.sync(ctx)
		if diff := cmp.Diff(want, announcedBy(n), announcedOpts...); diff != "" {
			t.Errorf("API down, pass %d (-want +got):\n%s", i, diff)
		}
	}

	meta, err := EncodeIfaces(loopSeg)
	mustDo(t, err)
	n.mem.SetMetaOf("node3", meta)
	n.mem.SetLive("node1", "node2", "node3")
	n.s.sync(ctx)
	if diff := cmp.Diff(ownedOf("node1", []string{"node1", "node2", "node3"}), lastL2(n.l2), addrCmp, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("API down, node3 joins: L2 (-want +got):\n%s", diff)
	}
	n.mem.SetLive("node1", "node2")
	n.s.sync(ctx)

	restarted := newLoopNode(t, "node1", c, func() bool { return false }, file, nil, "node1", "node2")
	restarted.s.restore() // what Run does first
	restarted.s.sync(ctx)
	if diff := cmp.Diff(want, announcedBy(restarted), announcedOpts...); diff != "" {
		t.Errorf("restarted during the outage (-want +got):\n%s", diff)
	}
}

// what a node announces, from its fakes.
type announcement struct {
	l2    []l2.Announcement
	peers []string
	paths []bgp.Path
	vips  []netip.Addr
}

func announcedBy(n *loopNode) announcement {
	var peers []string
	for _, p := range n.bgp.Peers() {
		peers = append(peers, p.Name)
	}
	return announcement{l2: lastL2(n.l2), peers: peers, paths: n.bgp.Paths(), vips: n.vip.Addrs()}
}

var announcedOpts = []cmp.Option{cmp.AllowUnexported(announcement{}), addrCmp, cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

// An address the L2 announcer cannot serve leaves the others served; the
// failure is counted every pass, logged once, and the address is served
// at the first pass after the fault clears, without any other event.
func TestPartialL2FailureRetried(t *testing.T) {
	var down atomic.Bool
	c := loopAPI(t, &down, nil, "node1")
	logs := &lab.SyncBuffer{}
	clk := clocktesting.NewFakeClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	n := newLoopNode(t, "node1", c, func() bool { return true }, "", func(o *Options) {
		o.Metrics, o.Clock, o.Resync = NewMetrics(prometheus.NewRegistry()), clk, time.Second
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}, "node1")
	all := ownedOf("node1", []string{"node1"})
	bad := all[3].Addr
	n.l2.FailOn(bad, errors.New("no such device"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	failures := func() float64 {
		var m dto.Metric
		mustDo(t, n.s.opts.Metrics.applyFails.WithLabelValues(partL2).Write(&m))
		return m.GetCounter().GetValue()
	}
	eventually(t, "the others served", func() bool {
		return cmp.Equal(withoutAddr(all, bad), n.l2.Served(), addrCmp) && failures() >= 1
	})
	for range 3 { // passes on the resync tick, the fault still there
		before := n.l2.Failed()
		clk.Step(time.Second)
		eventually(t, "a pass on the resync tick", func() bool { return n.l2.Failed() > before })
	}
	eventually(t, "every failed pass counted", func() bool { return failures() == float64(n.l2.Failed()) })
	if got := strings.Count(logs.String(), "not all applied"); got != 1 {
		t.Errorf("%d warnings for the same failure over %d passes, want 1:\n%s", got, n.l2.Failed(), logs)
	}
	if !strings.Contains(logs.String(), bad.String()) {
		t.Errorf("the warning does not name %s:\n%s", bad, logs)
	}

	n.l2.FailOn(bad, nil)
	clk.Step(time.Second)
	eventually(t, "served once the fault cleared", func() bool {
		return cmp.Equal(all, n.l2.Served(), addrCmp) && strings.Contains(logs.String(), "applied again")
	})
}

func withoutAddr(anns []l2.Announcement, addr netip.Addr) []l2.Announcement {
	return slices.DeleteFunc(slices.Clone(anns), func(a l2.Announcement) bool { return a.Addr == addr })
}

// eventually polls cond (generously: the machine may be loaded).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
