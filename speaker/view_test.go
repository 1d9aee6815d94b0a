package speaker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// viewAPI is an API cache (indexed as newAPICache indexes it) holding an
// L2 pool of IPv4 and IPv6 addresses, a BGP pool, two L2 and two BGP
// advertisements (aggregated and not, with selectors, interfaces, ready
// endpoints required and, on L2, spread Balanced), two BGP peers and three nodes.
func viewAPI(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		mustDo(t, add(scheme))
	}
	lp := int64(200)
	objs := []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metaNS("l2", "pier-system"),
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.0/28", "2001:db8:1::/124"}}},
		&v1alpha1.IPAddressPool{ObjectMeta: metaNS("bgp", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/28"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metaNS("all", "pier-system"), Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metaNS("web", "pier-system"), Spec: v1alpha1.L2AdvertisementSpec{
			IPAddressPools: []string{"l2", "bgp"}, Interfaces: []string{"eth1"}, RequireReadyEndpoints: true, Spread: v1alpha1.L2SpreadBalanced,
			NodeSelectors:    []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}},
			ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "web"}}}}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metaNS("agg", "pier-system"), Spec: v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{"bgp"}, AggregationLength: ptr.To(int32(30)), Communities: []string{"64512:100"}}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metaNS("host", "pier-system"), Spec: v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{"bgp", "l2"}, LocalPref: &lp, Communities: []string{"64512:200"}, Peers: []string{"r2"},
			RequireReadyEndpoints: true, ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "web"}}}}},
		&v1alpha1.BGPPeer{ObjectMeta: metaNS("r1", "pier-system"), Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1"}},
		&v1alpha1.BGPPeer{ObjectMeta: metaNS("r2", "pier-system"), Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.2",
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "b"}}}}},
	}
	for _, n := range []corev1.Node{node("node1", map[string]string{"zone": "a", "rack": "b"}), node("node2", map[string]string{"zone": "a"}), node("node3", nil)} {
		objs = append(objs, &n)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&discoveryv1.EndpointSlice{}, sliceServiceIndex, sliceService).Build()
}

// viewEvents makes random changes to the API of viewAPI: Services
// created, changed and deleted (addresses in and out of the pools,
// shared, of both families; policy, class, labels), their EndpointSlices
// (ready or not, on any node or none), and now and then a pool edit (which
// leaves orphans) or a node's labels. Each change calls service with the
// Service it concerns, or all when it concerns more.
type viewEvents struct {
	t   *testing.T
	c   client.Client
	rng *rand.Rand
}

// viewAddrs: few, so that Services share addresses and prefixes.
var viewAddrs = []string{"198.51.100.1", "198.51.100.2", "2001:db8:1::5",
	"203.0.113.1", "203.0.113.2", "203.0.113.6", "203.0.113.13", "192.0.2.77"}

func (e *viewEvents) step(service func(key string), all func()) {
	ctx := context.Background()
	name := fmt.Sprintf("svc-%d", e.rng.IntN(8))
	key := "default/" + name
	switch r := e.rng.IntN(20); {
	case r < 8:
		e.putService(name)
		service(key)
	case r < 10:
		e.del(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}})
		service(key)
	case r < 16:
		e.putSlice(name)
		service(key)
	case r < 18:
		e.del(ctx, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name + "-x" + fmt.Sprint(e.rng.IntN(2))}})
		service(key)
	case r < 19:
		pool := &v1alpha1.IPAddressPool{}
		mustDo(e.t, e.c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "bgp"}, pool))
		pool.Spec.Addresses = [][]string{{"203.0.113.0/28"}, {"203.0.113.0/30"}, {"203.0.113.8/29"}}[e.rng.IntN(3)]
		mustDo(e.t, e.c.Update(ctx, pool))
		all()
	default:
		n := &corev1.Node{}
		mustDo(e.t, e.c.Get(ctx, client.ObjectKey{Name: "node1"}, n))
		n.Labels = []map[string]string{{"zone": "a", "rack": "b"}, {"zone": "a", "rack": "b"}, {"rack": "b"}, {LabelExcludeLB: ""}}[e.rng.IntN(4)]
		mustDo(e.t, e.c.Update(ctx, n))
		all()
	}
}

// putService creates or changes the Service name at random.
func (e *viewEvents) putService(name string) {
	svc := lbService(name)
	for range 1 + e.rng.IntN(2) {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress,
			corev1.LoadBalancerIngress{IP: viewAddrs[e.rng.IntN(len(viewAddrs))]})
	}
	if e.rng.IntN(3) == 0 {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if e.rng.IntN(2) == 0 {
		svc.Labels["tier"] = "web"
	}
	if e.rng.IntN(10) == 0 {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if e.rng.IntN(10) == 0 {
		svc.Spec.LoadBalancerClass = ptr.To("other.example/lb")
	}
	svc.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: []string{"l2", "bgp", "l2,bgp"}[e.rng.IntN(3)]}
	e.put(context.Background(), &svc)
}

// putSlice creates or changes one of the two EndpointSlices of the
// Service name at random.
func (e *viewEvents) putSlice(name string) {
	ready := map[string]bool{}
	for range e.rng.IntN(4) {
		ready[fmt.Sprintf("node%d", 1+e.rng.IntN(3))] = e.rng.IntN(4) > 0
	}
	es := slice(name, ready)
	es.Name += fmt.Sprint(e.rng.IntN(2))
	if e.rng.IntN(5) == 0 {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	e.put(context.Background(), &es)
}

// put creates obj or replaces the one there.
func (e *viewEvents) put(ctx context.Context, obj client.Object) {
	e.t.Helper()
	err := e.c.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		old := obj.DeepCopyObject().(client.Object)
		mustDo(e.t, e.c.Get(ctx, client.ObjectKeyFromObject(obj), old))
		obj.SetResourceVersion(old.GetResourceVersion())
		err = e.c.Update(ctx, obj)
		if svc, ok := obj.(*corev1.Service); ok && err == nil {
			err = e.c.Status().Update(ctx, svc)
		}
	}
	mustDo(e.t, err)
}

func (e *viewEvents) del(ctx context.Context, obj client.Object) {
	e.t.Helper()
	mustDo(e.t, client.IgnoreNotFound(e.c.Delete(ctx, obj)))
}

// fullInputs reads the whole API as refreshTargets does, for Targets and
// BGPPlan.
func fullInputs(t *testing.T, c client.Client) (Inputs, map[string]string) {
	t.Helper()
	ctx := context.Background()
	var svcs corev1.ServiceList
	var es discoveryv1.EndpointSliceList
	var nodes corev1.NodeList
	var pools v1alpha1.IPAddressPoolList
	var l2 v1alpha1.L2AdvertisementList
	var peers v1alpha1.BGPPeerList
	var bgpAdvs v1alpha1.BGPAdvertisementList
	for _, l := range []client.ObjectList{&svcs, &es, &nodes, &pools, &l2, &peers, &bgpAdvs} {
		mustDo(t, c.List(ctx, l))
	}
	cfg, err := config.Parse(config.Objects{Pools: pools.Items, L2Advertisements: l2.Items, BGPPeers: peers.Items,
		BGPAdvertisements: bgpAdvs.Items, PasswordNamespace: "pier-system"})
	mustDo(t, err)
	return Inputs{Config: cfg, Services: svcs.Items, EndpointSlices: es.Items, Nodes: nodes.Items}, nil
}

// After any sequence of changes (and of members leaving and coming back),
// a speaker told which Service changed (ServiceChanged, reading and
// planning that Service alone) holds the same targets and BGP plan, and
// announces the same, as one that reads and plans everything again after
// each change; and that one holds what Targets and BGPPlan compute from
// the whole API.
func TestIncrementalEqualsFullRecompute(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkIncremental(t, seed, 60) })
	}
}

// FuzzIncremental is TestIncrementalEqualsFullRecompute over any seed and
// length.
func FuzzIncremental(f *testing.F) {
	f.Add(uint64(1), uint8(30))
	f.Add(uint64(7), uint8(200))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) { checkIncremental(t, seed, int(steps)) })
}

func checkIncremental(t *testing.T, seed uint64, steps int) {
	c := viewAPI(t)
	all := []string{"node1", "node2", "node3"}
	inc := newLoopNode(t, "node1", c, func() bool { return true }, "", nil, all...)
	full := newLoopNode(t, "node1", c, func() bool { return true }, "", nil, all...)
	ctx := context.Background()
	e := &viewEvents{t: t, c: c, rng: rand.New(rand.NewPCG(seed, 0))}
	for i := range 8 { // start with every Service and a slice each
		e.putService(fmt.Sprintf("svc-%d", i))
		e.putSlice(fmt.Sprintf("svc-%d", i))
	}
	inc.s.sync(ctx)
	full.s.sync(ctx)
	opts := []cmp.Option{addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmpopts.EquateEmpty()}
	for i := range steps {
		lastT, lastS := full.s.targets, full.s.bgp.Sources
		if e.rng.IntN(10) == 0 { // a member leaves or comes back
			live := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n != "node1" && e.rng.IntN(2) == 0 })
			inc.mem.SetLive(live...)
			full.mem.SetLive(live...)
		}
		e.step(inc.s.ServiceChanged, inc.s.APIChanged)
		full.s.APIChanged()
		inc.s.sync(ctx)
		full.s.sync(ctx)

		in, _ := fullInputs(t, c)
		in.Last, in.LastBGP = lastT, lastS
		if diff := cmp.Diff(Targets(in), full.s.targets, opts...); diff != "" {
			t.Fatalf("seed %d step %d: full read's targets differ from Targets (-Targets +speaker):\n%s", seed, i, diff)
		}
		if diff := cmp.Diff(BGPPlan(in, "node1", nil), full.s.bgp, opts...); diff != "" {
			t.Fatalf("seed %d step %d: full read's BGP plan differs from BGPPlan (-BGPPlan +speaker):\n%s", seed, i, diff)
		}
		if diff := cmp.Diff(full.s.targets, inc.s.targets, opts...); diff != "" {
			t.Fatalf("seed %d step %d: targets (-full +incremental):\n%s", seed, i, diff)
		}
		if diff := cmp.Diff(full.s.bgp, inc.s.bgp, opts...); diff != "" {
			t.Fatalf("seed %d step %d: BGP plan (-full +incremental):\n%s", seed, i, diff)
		}
		if diff := cmp.Diff(full.s.owned, inc.s.owned, opts...); diff != "" {
			t.Fatalf("seed %d step %d: owned (-full +incremental):\n%s", seed, i, diff)
		}
		_, _, fullChanged := full.s.report.take()
		_, _, incChanged := inc.s.report.take()
		if diff := cmp.Diff(fullChanged, incChanged, opts...); diff != "" {
			t.Fatalf("seed %d step %d: Services told to the status writer (-full +incremental):\n%s", seed, i, diff)
		}
		if diff := cmp.Diff(full.s.plan, inc.s.plan, opts...); diff != "" {
			t.Fatalf("seed %d step %d: L2 plan (-full +incremental):\n%s", seed, i, diff)
		}
		if diff := cmp.Diff(announcedBy(full), announcedBy(inc), announcedOpts...); diff != "" {
			t.Fatalf("seed %d step %d: announced (-full +incremental):\n%s", seed, i, diff)
		}
	}
}
