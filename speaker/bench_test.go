package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/internal/benchenv"
	"github.com/pier-lb/pier/internal/procstat"
	"github.com/pier-lb/pier/manifests"
	"github.com/pier-lb/pier/speaker/l2"
)

// benchEnvInt reads a positive count from the environment.
func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s: %q is not a count", name, v)
	}
	return n
}

// BenchmarkSpeaker: n assigned LoadBalancer Services (half
// externalTrafficPolicy Local), each with an EndpointSlice, and
// PIER_BENCH_NODES Node objects (default 3) are on a real API server;
// then one speaker starts in this process, with its real API cache, status
// writer and state file, and fakes for what needs root or other nodes
// (membership: this node alone, settled; the L2 announcer records when
// each address first appears in a Set). Measured:
//   - s/start: from the start until every address is announced;
//   - idle: over PIER_BENCH_IDLE seconds (default 10) with no change,
//     the process's CPU per second (ms/s), the speaker's API cache
//     reads per second, and the live heap and the process RSS after;
//     RSS-floor, measured last, is the RSS once the free pages are
//     returned to the system (debug.FreeOSMemory): the live heap, the
//     runtime and the binary, without the garbage the GC lets grow up to
//     the heap goal (GOGC) or the harness left;
//   - per change, PIER_BENCH_CHANGES times (default 20) one after the
//     other: a new Service gets its address (status written as the
//     controller does); the time from that write to the speaker's L2 Set
//     carrying the address (p50 and max), and the process's CPU per change.
//
// The process is the test binary: its CPU and RSS include this harness
// (idle while measured, save the change writes) and the Go runtime. The
// ServiceL2Status objects of the n Services are there before the speaker
// starts, as a restarted speaker finds them; PIER_BENCH_STATUS=new leaves
// them for the speaker to write (its start-up backlog, two requests per
// Service at its status rate, is then in the idle figures), and
// PIER_BENCH_STATUS=off leaves the status writer out, to measure the
// announcing side alone. PIER_BENCH_FOREIGN=k adds k statuses of another
// node (of other Services), as a speaker of a larger cluster finds them.
// PIER_BENCH_ENDPOINTS=k gives each slice k ready endpoints (default 1),
// the first on this node, the others spread over the Nodes.
// PIER_BENCH_MEMBERS=k makes this node one of k live members (k Nodes at
// least, each with the pool's interface), as one speaker of a k-node site:
// it then owns about 1/k of the addresses (the Local Services' first
// endpoints are spread over the k nodes too), its statuses are left for
// its writer, s/start runs until its L2 Set has not grown for 3 s and the
// writer has been idle for 3 s, and the changes are Local Services with
// their endpoint on this node (owned here).
// PIER_BENCH_SERVICES="1000,5000,20000"
// draws the curve over n; default 1000. PIER_BENCH_IDLE_PROFILE and
// PIER_BENCH_CHANGE_PROFILE name files for CPU profiles of the idle window
// and the changes, PIER_BENCH_HEAP_PROFILE one for the heap after idle.
func BenchmarkSpeaker(b *testing.B) {
	sizes, err := benchenv.Sizes("PIER_BENCH_SERVICES", "1000")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { speakerBench(b, n) })
	}
}

// scaleCluster holds 20,000 Services: a Service range of 65,536 (the
// default has 4,096) and 40,000 node ports, for the health-check node
// port each Service of externalTrafficPolicy Local gets (the default
// range has 2,768).
var scaleCluster = cluster.Options{APIServerFlags: []string{"--service-cluster-ip-range=198.19.0.0/16",
	"--service-node-port-range=20000-59999"}}

const (
	benchNode = "bench-node-00"
	benchNS   = "bench"
)

func speakerBench(b *testing.B, n int) {
	e := newAPIEnv(b, scaleCluster)
	nodes := benchEnvInt(b, "PIER_BENCH_NODES", 3)
	idle := time.Duration(benchEnvInt(b, "PIER_BENCH_IDLE", 10)) * time.Second
	changes := benchEnvInt(b, "PIER_BENCH_CHANGES", 20)
	e.members = benchEnvInt(b, "PIER_BENCH_MEMBERS", 1)
	nodes = max(nodes, e.members)
	e.endpoints, e.nodes = benchEnvInt(b, "PIER_BENCH_ENDPOINTS", 1), nodes
	for i := range nodes {
		e.create(b, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-node-%02d", i)}})
	}
	e.create(b, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}})
	created := time.Now()
	e.createAssigned(b, 0, n)
	if os.Getenv("PIER_BENCH_STATUS") != "new" && e.members == 1 {
		e.createL2Statuses(b, n, benchNode, "svc")
	}
	if k := benchEnvInt(b, "PIER_BENCH_FOREIGN", 1); os.Getenv("PIER_BENCH_FOREIGN") != "" {
		e.createL2Statuses(b, k, "bench-node-01", "away")
	}
	b.Logf("%d Services, EndpointSlices and statuses written in %v", n, time.Since(created).Round(time.Second))

	for i := 0; i < b.N; i++ {
		runtime.GC()
		cpu0 := processCPU(b)
		start := time.Now()
		sp := e.runSpeaker(b)
		if e.members == 1 {
			sp.l2.waitCount(b, n)
		} else {
			e.waitSettled(b, sp)
			b.ReportMetric(float64(sp.l2.held()), "owned")
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/start")
		b.ReportMetric((processCPU(b) - cpu0).Seconds(), "cpu-s/start")

		time.Sleep(3 * time.Second) // let the start's status writes settle
		runtime.GC()
		stopProfile := benchenv.CPUProfile(b, "PIER_BENCH_IDLE_PROFILE")
		cpu0, lists0 := processCPU(b), sp.lists.Load()
		time.Sleep(idle) // the measurement: nothing changes
		cpu1, lists1 := processCPU(b), sp.lists.Load()
		stopProfile()
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/idle.Seconds(), "idle-cpu-ms/s")
		b.ReportMetric(float64(lists1-lists0)/idle.Seconds(), "idle-lists/s")
		heap := procstat.LiveHeap()
		rss, err := procstat.RSS(0)
		if err != nil {
			b.Fatal(err)
		}
		benchenv.HeapProfile(b, "PIER_BENCH_HEAP_PROFILE")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "RSS-MiB")

		var lat []time.Duration
		stopProfile = benchenv.CPUProfile(b, "PIER_BENCH_CHANGE_PROFILE")
		cpu0 = processCPU(b)
		for k := range changes {
			idx := e.changeIndex(n, i*changes+k)
			written := e.createAssigned(b, idx, idx+1)
			lat = append(lat, sp.l2.waitAddr(b, benchAddr(idx)).Sub(written))
		}
		cpu1 = processCPU(b)
		stopProfile()
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/float64(changes), "cpu-ms/change")
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-to-announce-p50")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-to-announce-max")
		// Last: the pages returned would be faulted in again by the changes.
		debug.FreeOSMemory() // what the process needs, its free pages returned
		if rss, err = procstat.RSS(0); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rss)/(1<<20), "RSS-floor-MiB")
		sp.stop()
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	cpu, err := procstat.CPU(0)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}

// apiEnv is a real API server with Pier's CRDs, an L2 pool of
// 198.18.0.0/16 and its L2Advertisement.
type apiEnv struct {
	cl *cluster.Cluster
	c  client.Client
	// endpoints is how many endpoints each Service's slice has, spread
	// over nodes Nodes (PIER_BENCH_ENDPOINTS, PIER_BENCH_NODES).
	endpoints, nodes int
	// members is how many live members the speaker sees, this node
	// one of them (PIER_BENCH_MEMBERS); 1: this node alone.
	members int
	// statusWrites counts the speaker's status writer's writes.
	statusWrites atomic.Int64
}

// firstNode is the node of the first endpoint of Service i: this node,
// or with several members, Local Services (odd i) spread over them, so
// that this node owns about its share.
func (e *apiEnv) firstNode(i int) int {
	if e.members == 1 {
		return 0
	}
	return (i / 2) % e.members
}

// changeIndex is the index of the k-th Service from n on that this node
// owns whoever else is live: a Local Service whose endpoint is here.
func (e *apiEnv) changeIndex(n, k int) int {
	if e.members == 1 {
		return n + k
	}
	step := 2 * e.members
	return (n+step-2)/step*step + 1 + k*step
}

// waitSettled waits until the speaker's L2 Set has not grown for 3 s and
// its status writer has written nothing for 3 s: with other members, what
// this node will own is the planner's answer, not known here.
func (e *apiEnv) waitSettled(tb testing.TB, sp *benchSpeaker) {
	tb.Helper()
	const quiet = 3 * time.Second
	deadline := time.Now().Add(10 * time.Minute)
	last, writes, since := -1, int64(-1), time.Now()
	for time.Now().Before(deadline) {
		if h, w := sp.l2.held(), e.statusWrites.Load(); h != last || w != writes {
			last, writes, since = h, w, time.Now()
		} else if h > 0 && time.Since(since) >= quiet {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("the speaker did not settle within 10 minutes (%d addresses held)", last)
}

func newAPIEnv(tb testing.TB, opts cluster.Options) *apiEnv {
	tb.Helper()
	cl := cluster.ForTest(tb, opts)
	ctx := context.Background()
	if err := manifests.InstallCRDs(ctx, cl.Config); err != nil {
		tb.Fatal(err)
	}
	scheme, err := nodeScheme()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := *cl.Config
	cfg.QPS, cfg.Burst = 2000, 4000 // the harness writes fast; the speaker's own client is not changed
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		tb.Fatal(err)
	}
	e := &apiEnv{cl: cl, c: c}
	e.create(tb, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pier-system"}})
	e.create(tb, &v1alpha1.IPAddressPool{ObjectMeta: metaNS("bench", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/16"}}})
	e.create(tb, &v1alpha1.L2Advertisement{ObjectMeta: metaNS("bench", "pier-system"), Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"bench"}}})
	return e
}

func (e *apiEnv) create(tb testing.TB, obj client.Object) {
	tb.Helper()
	if err := e.c.Create(context.Background(), obj); err != nil {
		tb.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// createL2Statuses writes the ServiceL2Status of Services prefix-00000 to
// n as node's speaker would have.
func (e *apiEnv) createL2Statuses(tb testing.TB, n int, node, prefix string) {
	tb.Helper()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	next := atomic.Int64{}
	for range min(16, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := e.createL2Status(i, node, prefix); err != nil {
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

func (e *apiEnv) createL2Status(i int, node, prefix string) error {
	ctx := context.Background()
	name := fmt.Sprintf("%s-%05d", prefix, i)
	st := v1alpha1.ServiceL2StatusStatus{Node: node, ServiceNamespace: benchNS, ServiceName: name,
		Addresses: []string{benchAddr(i).String()}, Interfaces: []string{"bench0"}}
	obj := &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{
		Name: statusName(benchNS+"/"+name, node), Namespace: "pier-system",
		Labels: map[string]string{v1alpha1.LabelServiceName: name, v1alpha1.LabelServiceNamespace: benchNS, v1alpha1.LabelNode: node},
	}}
	if err := e.c.Create(ctx, obj); err != nil {
		return fmt.Errorf("create status of %s: %w", name, err)
	}
	obj.Status = st
	if err := e.c.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("status of status of %s: %w", name, err)
	}
	return nil
}

// benchAddr is the address of the i-th Service.
func benchAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
}

// createAssigned creates Services from to to (not included), each with an
// EndpointSlice of e.endpoints ready endpoints, the first on firstNode (this
// node unless several members), and writes their addresses in their status as the controller does; it returns when the
// last status write returned.
func (e *apiEnv) createAssigned(tb testing.TB, from, to int) time.Time {
	tb.Helper()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	next := atomic.Int64{}
	next.Store(int64(from))
	for range min(16, to-from) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < to && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := e.createOne(i); err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
	return time.Now()
}

func (e *apiEnv) createOne(i int) error {
	ctx := context.Background()
	name := fmt.Sprintf("svc-%05d", i)
	policy := corev1.ServiceExternalTrafficPolicyCluster
	if i%2 == 1 {
		policy = corev1.ServiceExternalTrafficPolicyLocal
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name, Labels: map[string]string{"app": name},
			Annotations: map[string]string{v1alpha1.AnnotationAllocatedFromPool: "bench"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports:                         []corev1.ServicePort{{Name: "calls", Protocol: corev1.ProtocolTCP, Port: 8443}},
			ExternalTrafficPolicy:         policy,
			AllocateLoadBalancerNodePorts: ptr.To(false),
		},
	}
	if err := e.c.Create(ctx, svc); err != nil {
		return fmt.Errorf("create service %s: %w", name, err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("calls"), Port: ptr.To[int32](8443)}},
	}
	for k := range max(e.endpoints, 1) { // the first on firstNode, the others on the next nodes
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 1+k*4+i>>16, byte(i>>8), byte(i))},
			NodeName:  ptr.To(fmt.Sprintf("bench-node-%02d", (e.firstNode(i)+k)%max(e.nodes, 1))), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if err := e.c.Create(ctx, es); err != nil {
		return fmt.Errorf("create endpointslice %s: %w", name, err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: benchAddr(i).String()}}
	if err := e.c.Status().Update(ctx, svc); err != nil {
		return fmt.Errorf("status of %s: %w", name, err)
	}
	return nil
}

// benchSpeaker is a speaker over the real API cache (as RunNode makes it),
// with fake membership and L2 announcer.
type benchSpeaker struct {
	l2    *stampL2
	lists atomic.Int64 // List calls on the API cache
	stop  func()
}

// countingReader counts the Lists a speaker makes.
type countingReader struct {
	client.Reader
	lists *atomic.Int64
}

func (r countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.lists.Add(1)
	return r.Reader.List(ctx, list, opts...)
}

func (e *apiEnv) runSpeaker(tb testing.TB) *benchSpeaker {
	tb.Helper()
	scheme, err := nodeScheme()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := newAPICache(e.cl.Config, scheme, restMapper(), "pier-system", "pier-system", benchNode)
	if err != nil {
		tb.Fatal(err)
	}
	wcfg := rest.CopyConfig(e.cl.Config)
	wcfg.QPS, wcfg.Burst = statusQPS, statusBurst // as RunNode's
	writer, err := client.NewWithWatch(wcfg, client.Options{Scheme: scheme})
	if err != nil {
		tb.Fatal(err)
	}
	var w client.Client = countWrites(writer, &e.statusWrites)
	if os.Getenv("PIER_BENCH_STATUS") == "off" {
		w = nil // no ServiceL2Status writes: the announcing side alone
	}
	mem := e.fakeMembers(tb)
	mem.Settle()
	bs := &benchSpeaker{l2: newStampL2()}
	var synced atomic.Bool
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("PIER_BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	sp, err := New(Options{
		NodeName: benchNode, Namespace: "pier-system", PasswordNamespace: "pier-system", GossipAddr: netip.MustParseAddr("192.0.2.1"),
		Reader: countingReader{c, &bs.lists}, Synced: synced.Load, Writer: w,
		Members: mem, L2: bs.l2, Logger: log,
		Interfaces: func() ([]Iface, error) { return benchIfaces, nil },
		StateFile:  filepath.Join(tb.TempDir(), "speaker-state.json"), StateEvery: DefaultStateEvery,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{
		c.Start, sp.Run, sp.RunL2Status,
		func(ctx context.Context) error { return sp.watchAPI(ctx, c, &synced, log, nil) },
	} {
		wg.Go(func() { _ = run(ctx) })
	}
	bs.stop = func() { cancel(); wg.Wait() }
	tb.Cleanup(bs.stop)
	return bs
}

// fakeMembers is the live membership: this node, and with several
// members the others, each with the pool's interface.
func (e *apiEnv) fakeMembers(tb testing.TB) *FakeMembers {
	tb.Helper()
	names := []string{benchNode}
	for k := 1; k < e.members; k++ {
		names = append(names, fmt.Sprintf("bench-node-%02d", k))
	}
	mem := NewFakeMembers(names...)
	meta, err := EncodeIfaces(benchIfaces)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names[1:] {
		mem.SetMetaOf(name, meta)
	}
	return mem
}

// benchIfaces are every bench node's interfaces: one on the pool's subnet.
var benchIfaces = []Iface{{Name: "bench0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}}}

// stampL2 is an L2 announcer that records when each address first
// appears in a Set, and how many it holds.
type stampL2 struct {
	mu    sync.Mutex
	first map[netip.Addr]time.Time
	count int
	grew  chan struct{}
}

func newStampL2() *stampL2 {
	return &stampL2{first: map[netip.Addr]time.Time{}, grew: make(chan struct{}, 1)}
}

func (s *stampL2) Set(_ context.Context, desired []l2.Announcement) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range desired {
		if _, ok := s.first[a.Addr]; !ok {
			s.first[a.Addr] = now
		}
	}
	s.count = len(desired)
	select {
	case s.grew <- struct{}{}:
	default:
	}
	return nil
}

func (s *stampL2) Reannounce() {}

// held is how many addresses the last Set carried.
func (s *stampL2) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (s *stampL2) waitCount(tb testing.TB, n int) {
	tb.Helper()
	s.wait(tb, fmt.Sprintf("%d addresses announced", n), func() bool { return s.count >= n })
}

// waitAddr returns when addr was first set.
func (s *stampL2) waitAddr(tb testing.TB, addr netip.Addr) time.Time {
	tb.Helper()
	var at time.Time
	s.wait(tb, addr.String()+" announced", func() bool {
		t, ok := s.first[addr]
		at = t
		return ok
	})
	return at
}

func (s *stampL2) wait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.After(10 * time.Minute)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.grew:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("%s: not within 10 minutes", what)
		}
	}
}
