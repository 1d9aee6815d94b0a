package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
)

// A dual-stack Service whose IPv4 and IPv6 addresses have different owners
// (as spread: Balanced makes likely) has one ServiceL2Status per owner, and
// both stay. Before, a node announcing a Service deleted every other
// node's object of it: each of the two nodes deleted the other's, was told
// its own was deleted, wrote it again, and so on, writing forever, most of
// the time with one of the two objects missing. Two speakers' status
// writers run here against a real API server, each with its own API cache,
// in rounds: every round each writer writes what changed, then both caches
// catch up with the API server.
func TestStatusDualStackTwoOwners(t *testing.T) {
	e := newAPIEnv(t, cluster.Options{})
	const svc = "default/dual"
	v4, v6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::10")
	var writes atomic.Int64
	nodes := []*statusNode{
		startStatusNode(t, e, "node1", &writes, Ownership{Addr: v4, Service: svc, Node: "node1", Ifaces: []string{"eth1"}}),
		startStatusNode(t, e, "node2", &writes, Ownership{Addr: v6, Service: svc, Node: "node2", Ifaces: []string{"eth1"}}),
	}
	ctx := context.Background()
	round := func(first bool) {
		t.Helper()
		for _, n := range nodes {
			_, _, changed := n.s.report.take()
			if first {
				changed = map[string]bool{svc: true}
			}
			mustDo(t, n.w.write(ctx, n.mine, changed))
		}
		for _, n := range nodes {
			n.catchUp(t, e)
		}
	}
	round(true)
	round(false)
	before := writes.Load()
	for range 4 {
		round(false)
	}
	if n := writes.Load() - before; n != 0 {
		t.Errorf("the two writers made %d writes in 4 rounds after settling, want 0", n)
	}
	var list v1alpha1.ServiceL2StatusList
	mustDo(t, e.c.List(ctx, &list, client.InNamespace("pier-system")))
	got := map[string]v1alpha1.ServiceL2StatusStatus{}
	for _, o := range list.Items {
		got[o.Name] = o.Status
	}
	want := map[string]v1alpha1.ServiceL2StatusStatus{
		statusName(svc, "node1"): {Node: "node1", ServiceNamespace: "default", ServiceName: "dual", Addresses: []string{v4.String()}, Interfaces: []string{"eth1"}},
		statusName(svc, "node2"): {Node: "node2", ServiceNamespace: "default", ServiceName: "dual", Addresses: []string{v6.String()}, Interfaces: []string{"eth1"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServiceL2Status objects (-want +got):\n%s", diff)
	}
}

// A node taking an address over deletes the stale object of the node that
// had it (dead, unable to clean up), found on the API server as its cache
// holds its own objects only, and leaves the object of a third node owning
// the Service's other address. Its own object, found without its node
// label (which the cache selects on), is labelled again.
func TestStatusTakeoverRemovesStale(t *testing.T) {
	e := newAPIEnv(t, cluster.Options{})
	const svc = "default/moved"
	v4, v6 := netip.MustParseAddr("198.51.100.20"), netip.MustParseAddr("2001:db8::20")
	ctx := context.Background()
	put := func(node string, label bool, addrs ...netip.Addr) {
		t.Helper()
		obj := l2Status("moved", node)
		if !label {
			delete(obj.Labels, v1alpha1.LabelNode)
		}
		st := obj.Status
		st.Addresses = nil
		for _, a := range addrs {
			st.Addresses = append(st.Addresses, a.String())
		}
		e.create(t, obj)
		obj.Status = st
		mustDo(t, e.c.Status().Update(ctx, obj))
	}
	put("node2", true, v4, v6) // node2 owned both before it died
	put("node3", true, v6)     // node3 took v6 over
	put("node1", false, v4)    // node1's, its label removed
	var writes atomic.Int64
	n := startStatusNode(t, e, "node1", &writes, Ownership{Addr: v4, Service: svc, Node: "node1", Ifaces: []string{"eth1"}})
	mustDo(t, n.w.write(ctx, n.mine, map[string]bool{svc: true}))

	var list v1alpha1.ServiceL2StatusList
	mustDo(t, e.c.List(ctx, &list, client.InNamespace("pier-system")))
	got := map[string][]string{}
	for _, o := range list.Items {
		got[o.Name+" labelled "+o.Labels[v1alpha1.LabelNode]] = o.Status.Addresses
	}
	want := map[string][]string{
		statusName(svc, "node1") + " labelled node1": {v4.String()},
		statusName(svc, "node3") + " labelled node3": {v6.String()},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServiceL2Status objects (-want +got):\n%s", diff)
	}
}

// statusNode is one node's status writer over its own API cache, as
// RunNode wires it, with what the node owns.
type statusNode struct {
	name string
	s    *Speaker
	w    *l2Writer
	c    cache.Cache
	mine map[netip.Addr]Ownership
}

// startStatusNode starts node's API cache and its watch of statuses; its
// writes (creates, updates, patches, deletes) are counted in writes.
func startStatusNode(t *testing.T, e *apiEnv, node string, writes *atomic.Int64, owns ...Ownership) *statusNode {
	t.Helper()
	scheme, err := nodeScheme()
	mustDo(t, err)
	c, err := newAPICache(e.cl.Config, scheme, restMapper(), "pier-system", "pier-system", node)
	mustDo(t, err)
	raw, err := client.NewWithWatch(e.cl.Config, client.Options{Scheme: scheme})
	mustDo(t, err)
	writer := countWrites(raw, writes)
	s, err := New(Options{NodeName: node, Namespace: "pier-system", Reader: c, Writer: writer, Synced: func() bool { return true },
		Members: NewFakeMembers(node), L2: &FakeL2{}})
	mustDo(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	mustDo(t, s.watchStatus(ctx, c))
	if !c.WaitForCacheSync(ctx) {
		t.Fatalf("%s: cache not synced", node)
	}
	mine := map[netip.Addr]Ownership{}
	for _, o := range owns {
		mine[o.Addr] = o
	}
	return &statusNode{name: node, s: s, w: &l2Writer{s: s}, c: c, mine: mine}
}

// catchUp waits until the node's cache holds what the API server holds of
// the ServiceL2Status objects it caches: each cached object as the API
// server has it, and every object of this node.
func (n *statusNode) catchUp(t *testing.T, e *apiEnv) {
	t.Helper()
	ctx := context.Background()
	lab.Poll(t, n.name+"'s cache catches up", 20*time.Millisecond, 30*time.Second, func() error {
		var api, cached v1alpha1.ServiceL2StatusList
		if err := e.c.List(ctx, &api, client.InNamespace("pier-system")); err != nil {
			return err
		}
		if err := n.c.List(ctx, &cached, client.InNamespace("pier-system")); err != nil {
			return err
		}
		have := map[string]string{}
		for _, o := range api.Items {
			have[o.Name] = o.ResourceVersion
		}
		seen := map[string]bool{}
		for _, o := range cached.Items {
			if have[o.Name] != o.ResourceVersion {
				return fmt.Errorf("%s cached at version %q, API server has %q", o.Name, o.ResourceVersion, have[o.Name])
			}
			seen[o.Name] = true
		}
		for _, o := range api.Items {
			if o.Labels[v1alpha1.LabelNode] == n.name && !seen[o.Name] {
				return fmt.Errorf("%s not cached", o.Name)
			}
		}
		return nil
	})
}

// countWrites wraps c so that every write through it (create, update,
// patch, delete, and status updates and patches) adds one to writes.
func countWrites(c client.WithWatch, writes *atomic.Int64) client.WithWatch {
	count := func() { writes.Add(1) }
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			count()
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			count()
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			count()
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			count()
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
}
