package speaker

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
)

// countingAPI is loopAPI that counts its List calls.
func countingAPI(t *testing.T, lists *atomic.Int64, nodes ...string) client.Client {
	t.Helper()
	var down atomic.Bool
	inner := loopAPI(t, &down, []string{"203.0.113.10"}, nodes...)
	return interceptor.NewClient(inner.(client.WithWatch), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists.Add(1)
			return c.List(ctx, list, opts...)
		},
	})
}

// An idle speaker does no work proportional to the cluster: the resync
// tick reads no API object (the cache raised no event, so nothing there
// changed); only a change of the API view makes it read again.
func TestIdleTickReadsNoAPI(t *testing.T) {
	var lists atomic.Int64
	c := countingAPI(t, &lists, "node1", "node2")
	clk := clocktesting.NewFakeClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	var passes atomic.Int64 // every pass reads the local interfaces
	n := newLoopNode(t, "node1", c, func() bool { return true }, "", func(o *Options) {
		o.Clock, o.Resync = clk, time.Second
		o.Interfaces = func() ([]Iface, error) { passes.Add(1); return loopSeg, nil }
	}, "node1", "node2")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "the first pass announced", func() bool { return len(n.l2.Sets()) > 0 && lists.Load() > 0 })
	first := lists.Load()
	for range 10 {
		before := passes.Load()
		clk.Step(time.Second)
		eventually(t, "a pass on the resync tick", func() bool { return passes.Load() > before })
	}
	if got := lists.Load() - first; got != 0 {
		t.Errorf("10 idle resync ticks listed API objects %d times, want 0 (the first pass listed %d)", got, first)
	}
	sets := len(n.l2.Sets())
	if sets > 2 {
		t.Errorf("%d L2 sets while nothing changed, want at most the first two passes'", sets)
	}

	// A change of the API view is read and announced at once.
	late := netip.MustParseAddr("198.51.100.230")
	for members.Owner(late, []string{"node1", "node2"}) != "node1" {
		late = late.Next() // one node1 announces, still in pool l2
	}
	svc := lbService("late", late.String())
	mustDo(t, c.Create(ctx, &svc))
	n.s.APIChanged() // what the cache's informer does
	eventually(t, "the new Service announced", func() bool {
		return slices.ContainsFunc(lastL2(n.l2), func(a l2.Announcement) bool { return a.Addr == late })
	})
	if lists.Load() == first {
		t.Error("the API change was not read")
	}
}
