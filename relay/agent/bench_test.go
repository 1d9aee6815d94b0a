package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/internal/benchenv"
	"github.com/pier-lb/pier/internal/procstat"
	"github.com/pier-lb/pier/manifests"
)

const (
	benchNS     = "bench"
	benchNode   = "bench-node"
	benchRelays = 3
)

// BenchmarkAgentIdle: n Services' EndpointSlices (one each, three ready
// endpoints) and benchRelays Relays, each naming one of those Services as
// its backend, are on a real API server; then one relay agent starts in
// this process (its real API cache and Leases, listeners on loopback).
// Measured:
//   - s/start: from the start until every Relay is served;
//   - idle, over PIER_BENCH_IDLE seconds (default 10) with no change:
//     the process's CPU per second (ms/s), and the live heap and the
//     process RSS after;
//   - per change, 10 times: an endpoint is added to a Relay's backend
//     slice; the time until the running relay has it (p50, max).
//
// PIER_BENCH_SERVICES="1000,5000,20000" draws the curve over n; default
// 1000.
//
// The Services themselves are not created: the agent does not read them.
// The process is the test binary: its CPU and RSS include this harness
// (idle while measured) and the Go runtime.
func BenchmarkAgentIdle(b *testing.B) {
	ctrllog.SetLogger(logr.Discard())
	sizes, err := benchenv.Sizes("PIER_BENCH_SERVICES", "1000")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { agentBench(b, n) })
	}
}

func agentBench(b *testing.B, n int) {
	e := newBenchEnv(b)
	idle := 10 * time.Second
	if v, err := strconv.Atoi(os.Getenv("PIER_BENCH_IDLE")); err == nil && v > 0 {
		idle = time.Duration(v) * time.Second
	}
	created := time.Now()
	e.createSlices(b, n)
	for i := range benchRelays {
		port := freeUDPPort(b)
		e.create(b, &v1alpha1.Relay{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: fmt.Sprintf("relay-%d", i)},
			Spec: v1alpha1.RelaySpec{
				Backend:   v1alpha1.RelayBackend{ServiceName: benchService(i)},
				Listeners: []v1alpha1.RelayListener{{Name: "calls", Protocol: corev1.ProtocolUDP, Port: int32(port)}},
			},
		})
	}
	b.Logf("%d EndpointSlices and %d Relays written in %v", n, benchRelays, time.Since(created).Round(time.Second))

	for i := 0; i < b.N; i++ {
		runtime.GC()
		cpu0 := processCPU(b)
		start := time.Now()
		ag := e.runAgent(b)
		ag.wait(b, "every Relay served", func() bool { return ag.gauge("pier_relay_agent_served_relays", "") == benchRelays })
		b.ReportMetric(time.Since(start).Seconds(), "s/start")
		b.ReportMetric((processCPU(b) - cpu0).Seconds(), "cpu-s/start")

		time.Sleep(2 * time.Second) // the first Lease writes
		runtime.GC()
		stopProfile := benchenv.CPUProfile(b, "PIER_BENCH_IDLE_PROFILE")
		cpu0 = processCPU(b)
		time.Sleep(idle) // the measurement: nothing changes
		cpu1 := processCPU(b)
		stopProfile()
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/idle.Seconds(), "idle-cpu-ms/s")
		heap := procstat.LiveHeap()
		rss, err := procstat.RSS(0)
		if err != nil {
			b.Fatal(err)
		}
		benchenv.HeapProfile(b, "PIER_BENCH_HEAP_PROFILE")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "RSS-MiB")

		var lat []time.Duration
		for k := range 10 {
			endpoints := 3 + i*10 + k + 1
			written := e.setEndpoints(b, 0, endpoints)
			ag.wait(b, "the added backend", func() bool { return ag.gauge("pier_relay_backend_up", "bench/relay-0") == endpoints })
			lat = append(lat, time.Since(written))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-to-backend-p50")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-to-backend-max")
		ag.stop()
	}
}

// freeUDPPort is a UDP port free on the loopback address.
func freeUDPPort(tb testing.TB) uint16 {
	tb.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

func benchService(i int) string { return fmt.Sprintf("svc-%05d", i) }

// processCPU is this process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	cpu, err := procstat.CPU(0)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}

// benchEnv is a real API server with Pier's CRDs, the bench namespace,
// Pier's namespace and the agent's Node.
type benchEnv struct {
	cl *cluster.Cluster
	c  client.Client
}

func newBenchEnv(tb testing.TB) *benchEnv {
	tb.Helper()
	cl := cluster.ForTest(tb, cluster.Options{})
	if err := manifests.InstallCRDs(context.Background(), cl.Config); err != nil {
		tb.Fatal(err)
	}
	scheme := clientgoscheme.Scheme
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	cfg := *cl.Config
	cfg.QPS, cfg.Burst = 2000, 4000 // the harness writes fast; the agent's own client is not changed
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		tb.Fatal(err)
	}
	e := &benchEnv{cl: cl, c: c}
	for _, ns := range []string{benchNS, "pier-system"} {
		e.create(tb, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	e.create(tb, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: benchNode}})
	return e
}

func (e *benchEnv) create(tb testing.TB, obj client.Object) {
	tb.Helper()
	if err := e.c.Create(context.Background(), obj); err != nil {
		tb.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// createSlices creates one EndpointSlice for each of n Services, 16 at a
// time.
func (e *benchEnv) createSlices(tb testing.TB, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	var next atomic.Int64
	for range min(16, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := e.c.Create(context.Background(), benchSlice(i, 3)); err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
}

// benchSlice is the EndpointSlice of the i-th Service with its first
// endpoints (pods named after it, on benchNode, addresses in the
// benchmarking range that nothing contacts: the Relays listen on UDP
// only and name no health port, so their relays make no active check).
func benchSlice(i, endpoints int) *discoveryv1.EndpointSlice {
	name := benchService(i)
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("calls"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](8443)}},
	}
	for k := range endpoints {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{netip.AddrFrom4([4]byte{198, 18, byte(k), byte(i)}).String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(benchNode),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: benchNS, Name: fmt.Sprintf("%s-%d", name, k)},
		})
	}
	return es
}

// setEndpoints gives the i-th Service's slice that many endpoints; it
// returns when the write returned.
func (e *benchEnv) setEndpoints(tb testing.TB, i, endpoints int) time.Time {
	tb.Helper()
	want := benchSlice(i, endpoints)
	var cur discoveryv1.EndpointSlice
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(want), &cur); err != nil {
		tb.Fatal(err)
	}
	cur.Endpoints = want.Endpoints
	if err := e.c.Update(context.Background(), &cur); err != nil {
		tb.Fatal(err)
	}
	return time.Now()
}

// benchAgent is a relay agent running in this process.
type benchAgent struct {
	reg  *prometheus.Registry
	stop func()
}

func (e *benchEnv) runAgent(tb testing.TB) *benchAgent {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("PIER_BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	reg := prometheus.NewRegistry()
	a, err := New(Options{
		Config: e.cl.Config, NodeName: benchNode, Namespace: "pier-system",
		Bind: netip.MustParseAddr("127.0.0.1"), Logger: log, Registerer: reg,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	ag := &benchAgent{reg: reg, stop: func() { once.Do(func() { cancel(); <-done }) }}
	tb.Cleanup(ag.stop)
	return ag
}

// gauge is the sum of the metric's series (gauges or counters) (with relay="relay" when not
// ""), or, for pier_relay_backend_up, how many series it has.
func (ag *benchAgent) gauge(name, relay string) int {
	mfs, err := ag.reg.Gather()
	if err != nil {
		return -1
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if relay != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "relay" && l.GetValue() == relay }) {
				continue
			}
			switch {
			case name == "pier_relay_backend_up":
				n++
			case m.Counter != nil:
				n += int(m.GetCounter().GetValue())
			default:
				n += int(m.GetGauge().GetValue())
			}
		}
	}
	return n
}

func (ag *benchAgent) wait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 10 minutes", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
