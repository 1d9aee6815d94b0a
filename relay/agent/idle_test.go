package agent

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlfake "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pier-lb/pier/api/v1alpha1"
)

var localhost = netip.MustParseAddr("127.0.0.1")

// fakeAPI is a fake API cache holding objs, with the agent's index.
func fakeAPI(t *testing.T, objs ...client.Object) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return ctrlfake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&discoveryv1.EndpointSlice{}, serviceIndex, sliceService).Build()
}

// countingAPI is fakeAPI that counts its Lists.
func countingAPI(t *testing.T, lists *atomic.Int64, objs ...client.Object) client.WithWatch {
	t.Helper()
	return interceptor.NewClient(fakeAPI(t, objs...), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists.Add(1)
			return c.List(ctx, list, opts...)
		},
	})
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An idle agent does no work proportional to the cluster: its resync
// tick reads no API object (the cache raised no event, so nothing there
// changed).
func TestIdleTickReadsNoAPI(t *testing.T) {
	port := freePort(t)
	r := calls("a", "r", func(r *v1alpha1.Relay) {
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "calls-tcp", Protocol: "TCP", Port: int32(port)}}
	})
	es := slice("a", "media", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.51.100.1", target: "srv1"})
	var lists atomic.Int64
	c := countingAPI(t, &lists, &r, &es)
	clk := clocktesting.NewFakeClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	a, err := New(Options{
		Config: &rest.Config{Host: "https://192.0.2.1:6443"}, NodeName: "node1", Namespace: "pier-system", Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.leases = newLeases(fake.NewClientset().CoordinationV1().Leases("pier-system"), "node1", time.Minute, 10*time.Second,
		clk, a.log, a.metrics)
	a.synced.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.loop(ctx, c, localhost) }()
	defer func() { cancel(); <-done }()

	eventually(t, "the first pass served the Relay", func() bool { return gauge(t, a.metrics.served) == 1 && a.passes.Load() > 0 })
	first := lists.Load()
	for range 10 {
		before := a.passes.Load()
		clk.Step(time.Second)
		eventually(t, "a pass on the resync tick", func() bool { return a.passes.Load() > before })
	}
	if got := lists.Load() - first; got != 0 {
		t.Errorf("10 idle resync ticks listed API objects %d times, want 0 (the first pass listed %d)", got, first)
	}
}

// After the idle ticks, a change of a backend slice (its event) makes
// exactly one pass read again, and the relay gets the new backend; an
// EndpointSlice of a Service no Relay names is no event for the agent,
// and is not read.
func TestChangeReadsOnce(t *testing.T) {
	port := freePort(t)
	r := calls("a", "r", func(r *v1alpha1.Relay) {
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "calls-tcp", Protocol: "TCP", Port: int32(port)}}
	})
	es := slice("a", "media", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.51.100.1", target: "srv1"})
	other := slice("a", "web", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.51.100.9", target: "web1"})
	var lists atomic.Int64
	c := countingAPI(t, &lists, &r, &es, &other)
	clk := clocktesting.NewFakeClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	a, err := New(Options{
		Config: &rest.Config{Host: "https://192.0.2.1:6443"}, NodeName: "node1", Namespace: "pier-system", Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.leases = newLeases(fake.NewClientset().CoordinationV1().Leases("pier-system"), "node1", time.Minute, 10*time.Second,
		clk, a.log, a.metrics)
	a.synced.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.loop(ctx, c, localhost) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	defer stop()
	eventually(t, "the first pass served the Relay", func() bool { return gauge(t, a.metrics.served) == 1 && a.passes.Load() > 0 })
	if a.backendSlice(&other) || !a.backendSlice(&es) {
		t.Errorf("backendSlice(web) %v, backendSlice(media) %v: want only the Relay's backend Service's slices",
			a.backendSlice(&other), a.backendSlice(&es))
	}
	first := lists.Load()

	es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.51.100.2"}})
	if err := c.Update(ctx, &es); err != nil {
		t.Fatal(err)
	}
	before := a.passes.Load()
	a.changed() // as the slice's informer event does
	eventually(t, "a pass after the change", func() bool { return a.passes.Load() > before })
	for range 3 {
		before := a.passes.Load()
		clk.Step(time.Second)
		eventually(t, "a pass on the resync tick", func() bool { return a.passes.Load() > before })
	}
	// One read: the Relays, then the slices of its one backend Service.
	if got := lists.Load() - first; got != 2 {
		t.Errorf("a change and 3 ticks listed %d times, want 2 (Relays, then the backend's slices)", got)
	}
	stop() // the loop's state may be read now
	k := Key{Namespace: "a", Name: "r"}
	if got := backendNames(a.want[k].Backends); len(got) != 2 {
		t.Errorf("backends after the change %v, want srv1 and the new one", got)
	}
	in, err := a.read(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, es := range in.EndpointSlices {
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "media" {
			t.Errorf("read the slice %s of Service %s, which no Relay names", es.Name, svc)
		}
	}
}
