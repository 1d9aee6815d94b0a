package speaker

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// l2Status is the object node's speaker writes for svc announcing addrs on
// eth1.
func l2Status(svc, node string, addrs ...string) *v1alpha1.ServiceL2Status {
	st := v1alpha1.ServiceL2StatusStatus{Node: node, ServiceNamespace: "default", ServiceName: svc, Addresses: addrs, Interfaces: []string{"eth1"}}
	return &v1alpha1.ServiceL2Status{
		ObjectMeta: metav1.ObjectMeta{Name: statusName("default/"+svc, node), Namespace: "pier-system", Labels: map[string]string{
			v1alpha1.LabelServiceName: svc, v1alpha1.LabelServiceNamespace: "default", v1alpha1.LabelNode: node}},
		Status: st,
	}
}

// The status writer lists the objects once, then reads and writes only
// what changed: a round with nothing changed makes no API call (before, it
// listed every object and read each of its own again, every round and
// every 5 s); an object of this node deleted by someone else is written
// again once the deletion is told (statusChanged).
func TestStatusWriterWritesWhatChanged(t *testing.T) {
	scheme := runtime.NewScheme()
	mustDo(t, v1alpha1.AddToScheme(scheme))
	var calls atomic.Int64
	count := func() { calls.Add(1) }
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(l2Status("a", "node2", "198.51.100.1"), l2Status("b", "node1", "198.51.100.2"), l2Status("c", "node1", "198.51.100.3")).
		WithStatusSubresource(&v1alpha1.ServiceL2Status{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				count()
				return c.Get(ctx, key, obj, opts...)
			},
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				count()
				return c.List(ctx, list, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				count()
				return c.Create(ctx, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				count()
				return c.Delete(ctx, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				count()
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	s, err := New(Options{NodeName: "node1", Namespace: "pier-system", Reader: c, Writer: c, Synced: func() bool { return true },
		Members: NewFakeMembers("node1"), L2: &FakeL2{}})
	mustDo(t, err)
	own := func(svc, addr string) Ownership {
		return Ownership{Addr: netip.MustParseAddr(addr), Service: "default/" + svc, Node: "node1", Ifaces: []string{"eth1"}}
	}
	mine := map[netip.Addr]Ownership{}
	for _, o := range []Ownership{own("a", "198.51.100.1"), own("b", "198.51.100.2")} {
		mine[o.Addr] = o
	}
	w := &l2Writer{s: s}
	ctx := context.Background()
	names := func() []string {
		var list v1alpha1.ServiceL2StatusList
		mustDo(t, c.List(ctx, &list))
		var out []string
		for _, o := range list.Items {
			out = append(out, o.Name)
		}
		return slices.Sorted(slices.Values(out))
	}

	mustDo(t, w.write(ctx, mine, nil))
	// node1 took a over from node2 and no longer announces c.
	if diff := cmp.Diff([]string{"default-a-node1", "default-b-node1"}, names()); diff != "" {
		t.Errorf("objects after the first round (-want +got):\n%s", diff)
	}

	calls.Store(0)
	mustDo(t, w.write(ctx, mine, nil))
	if n := calls.Load(); n != 0 {
		t.Errorf("a round with nothing changed made %d API calls, want 0", n)
	}

	mustDo(t, c.Delete(ctx, l2Status("b", "node1")))
	mustDo(t, w.write(ctx, mine, map[string]bool{"default/b": true})) // what watchStatus tells
	if diff := cmp.Diff([]string{"default-a-node1", "default-b-node1"}, names()); diff != "" {
		t.Errorf("objects after b's was deleted by someone else (-want +got):\n%s", diff)
	}

	delete(mine, netip.MustParseAddr("198.51.100.2"))
	calls.Store(0)
	mustDo(t, w.write(ctx, mine, map[string]bool{"default/b": true})) // what reportOwnership tells
	if n := calls.Load(); n > 2 {
		t.Errorf("letting one Service go made %d API calls, want at most 2 (find its objects, delete node1's)", n)
	}
	if diff := cmp.Diff([]string{"default-a-node1"}, names()); diff != "" {
		t.Errorf("objects after node1 let b go (-want +got):\n%s", diff)
	}
}
