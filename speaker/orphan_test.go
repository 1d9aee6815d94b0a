package speaker

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/l2"
)

// orphanAPI is a fake API cache with two pools, a and b, and an
// L2Advertisement and a BGPAdvertisement of pool b only (the BGP one with
// a community, which an orphan must keep), one BGP peer and node1.
func orphanAPI(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		mustDo(t, add(scheme))
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "pier-system"} }
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&v1alpha1.IPAddressPool{ObjectMeta: meta("a"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.0/26"}}},
		&v1alpha1.IPAddressPool{ObjectMeta: meta("b"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.64/26"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: meta("only-b"), Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"b"}}},
		&v1alpha1.BGPPeer{ObjectMeta: meta("r1"), Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1"}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: meta("only-b"), Spec: v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{"b"}, Communities: []string{"64512:70"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}},
	).Build()
}

// orphanSpeaker is node1's speaker on c, settled alone, with an interface
// whose subnet holds both pools, and fake announcers.
func orphanSpeaker(t *testing.T, c client.Client, stateFile string) (*Speaker, *FakeL2, *FakeBGP) {
	t.Helper()
	members := NewFakeMembers("node1")
	members.Settle()
	l2a, bgpa := &FakeL2{}, &FakeBGP{}
	s, err := New(Options{
		NodeName: "node1", Namespace: "pier-system",
		Reader: c, Synced: func() bool { return true },
		Members: members, L2: l2a, BGP: bgpa,
		Interfaces: func() ([]Iface, error) {
			return []Iface{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}, nil
		},
		StateFile: stateFile,
	})
	mustDo(t, err)
	return s, l2a, bgpa
}

// orphanAnnounced is what node1 announces for the Service kept at
// 198.51.100.70.
var (
	orphanL2  = []l2.Announcement{{Addr: netip.MustParseAddr("198.51.100.70"), Iface: "eth0"}}
	orphanBGP = []bgp.Path{{Prefix: netip.MustParsePrefix("198.51.100.70/32"), Peers: []string{"r1"}, Communities: []uint32{64512<<16 | 70}}}
)

func lastL2(f *FakeL2) []l2.Announcement {
	sets := f.Sets()
	if len(sets) == 0 {
		return nil
	}
	return sets[len(sets)-1]
}

func checkAnnounced(t *testing.T, when string, l2a *FakeL2, bgpa *FakeBGP, wantL2 []l2.Announcement, wantBGP []bgp.Path) {
	t.Helper()
	eq := []cmp.Option{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}
	if diff := cmp.Diff(wantL2, lastL2(l2a), eq...); diff != "" {
		t.Errorf("L2 %s (-want +got):\n%s", when, diff)
	}
	if diff := cmp.Diff(wantBGP, bgpa.Paths(), eq...); diff != "" {
		t.Errorf("BGP %s (-want +got):\n%s", when, diff)
	}
}

// keptService creates the Service kept, holding 198.51.100.70 from pool b.
func keptService(t *testing.T, c client.Client) *corev1.Service {
	t.Helper()
	x := lbService("kept", "198.51.100.70")
	x.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: "b"}
	mustDo(t, c.Create(context.Background(), &x))
	return &x
}

func editPoolB(t *testing.T, c client.Client, addrs ...string) {
	t.Helper()
	ctx := context.Background()
	var b v1alpha1.IPAddressPool
	mustDo(t, c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "b"}, &b))
	if len(addrs) == 0 {
		mustDo(t, c.Delete(ctx, &b))
		return
	}
	b.Spec.Addresses = addrs
	mustDo(t, c.Update(ctx, &b))
}

// An orphan stays announced over L2 and BGP alike until its Service lets
// it go: while its pool, edited, no longer holds it, and once the pool is
// deleted (then as it was announced last: same paths, same communities).
func TestOrphanStaysAnnouncedL2AndBGP(t *testing.T) {
	c := orphanAPI(t)
	s, l2a, bgpa := orphanSpeaker(t, c, filepath.Join(t.TempDir(), "state.json"))
	ctx := context.Background()
	kept := keptService(t, c)
	s.sync(ctx)
	checkAnnounced(t, "of a pool member", l2a, bgpa, orphanL2, orphanBGP)

	editPoolB(t, c, "198.51.100.96/27") // .70 falls outside
	s.APIChanged()                      // what the cache's informer does
	s.sync(ctx)
	checkAnnounced(t, "of an orphan of an edited pool", l2a, bgpa, orphanL2, orphanBGP)

	editPoolB(t, c) // deleted: both advertisements now name no pool
	s.APIChanged()  // what the cache's informer does
	s.sync(ctx)
	checkAnnounced(t, "of an orphan of a deleted pool", l2a, bgpa, orphanL2, orphanBGP)
	s.APIChanged()
	s.sync(ctx) // and again, read anew: the fallback keeps itself
	checkAnnounced(t, "of an orphan of a deleted pool, next sync", l2a, bgpa, orphanL2, orphanBGP)
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("198.51.100.70")}, s.bgp.Addrs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("addresses BGP carries, for the local VIPs (-want +got):\n%s", diff)
	}

	mustDo(t, c.Delete(ctx, kept))
	s.APIChanged() // what the cache's informer does
	s.sync(ctx)
	checkAnnounced(t, "once the Service is deleted", l2a, bgpa, nil, nil)
}

// A speaker restarted after the pool of an orphan was deleted announces
// the orphan from its state file, over L2 and BGP, until the Service lets
// it go.
func TestOrphanOfDeletedPoolSurvivesRestart(t *testing.T) {
	c := orphanAPI(t)
	file := filepath.Join(t.TempDir(), "state.json")
	s, _, _ := orphanSpeaker(t, c, file)
	ctx := context.Background()
	kept := keptService(t, c)
	s.sync(ctx)
	editPoolB(t, c)
	s.APIChanged() // what the cache's informer does
	s.sync(ctx)

	again, l2a, bgpa := orphanSpeaker(t, c, file)
	again.restore() // what Run does first
	again.sync(ctx)
	checkAnnounced(t, "after a restart", l2a, bgpa, orphanL2, orphanBGP)

	mustDo(t, c.Delete(ctx, kept))
	again.APIChanged() // what the cache's informer does
	again.sync(ctx)
	checkAnnounced(t, "after a restart, once the Service is deleted", l2a, bgpa, nil, nil)
}
