package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
)

// A status write that hangs (a throttled or unreachable API server) must
// not hold up a takeover: the announcing loop goes on, and the statuses are
// written once the API server answers.
func TestTakeoverDoesNotWaitForStatus(t *testing.T) {
	release := make(chan struct{})
	c := blockedWrites(t, release)
	seg := []Iface{{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}
	meta, err := EncodeIfaces(seg)
	if err != nil {
		t.Fatal(err)
	}
	mem := NewFakeMembers("node1", "node2", "node3")
	mem.SetMetaOf("node2", meta)
	mem.SetMetaOf("node3", meta)
	mem.Settle()
	ann := &FakeL2{}
	s, err := New(Options{
		NodeName: "node1", Namespace: "pier-system", Reader: c, Writer: c, Synced: func() bool { return true },
		Members: mem, L2: ann, Interfaces: func() ([]Iface, error) { return seg, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.RunL2Status(ctx) }()

	for _, live := range [][]string{{"node1", "node2", "node3"}, {"node1", "node3"}} {
		mem.SetLive(live...)
		done := make(chan struct{})
		go func() { s.sync(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second): // a hang, not a speed bound
			t.Fatalf("live %v: the announcing loop waits for the API server's status writes", live)
		}
		sets := ann.Sets()
		if diff := cmp.Diff(ownedOf("node1", live), sets[len(sets)-1], cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("live %v: announced (-want +got):\n%s", live, diff)
		}
	}
	close(release)
	want := len(servicesOf(ownedOf("node1", []string{"node1", "node3"})))
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.ServiceL2StatusList
		if err := c.List(ctx, &list); err != nil {
			return false, err
		}
		return len(list.Items) == want, nil
	})
	if err != nil {
		t.Errorf("statuses not written once the API server answered: %v", err)
	}
}

// claimAddrs are the test's 20 Service addresses, claim-00 to claim-19.
func claimAddrs() []netip.Addr {
	var out []netip.Addr
	for i := range 20 {
		out = append(out, netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)}))
	}
	return out
}

// ownedOf is what node announces among live, by the election.
func ownedOf(node string, live []string) []l2.Announcement {
	var out []l2.Announcement
	for _, a := range claimAddrs() {
		if members.Owner(a, live) == node {
			out = append(out, l2.Announcement{Addr: a, Iface: "eth1"})
		}
	}
	return out
}

func servicesOf(anns []l2.Announcement) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, a := range anns {
		out[a.Addr] = true
	}
	return out
}

// blockedWrites is an API server holding an L2 pool, three nodes and 20
// Services, whose creates hang until release is closed.
func blockedWrites(t *testing.T, release <-chan struct{}) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	objs := []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metaNS("l2", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.200-198.51.100.250"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metaNS("all", "pier-system")},
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		nd := node(n, nil)
		objs = append(objs, &nd)
	}
	for i, a := range claimAddrs() {
		svc := lbService(fmt.Sprintf("claim-%02d", i), a.String())
		objs = append(objs, &svc)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&v1alpha1.ServiceL2Status{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
				return c.Create(ctx, obj, opts...)
			},
		}).Build()
}

func metaNS(name, ns string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
