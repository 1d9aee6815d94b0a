package controller_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/internal/benchenv"
)

const benchServices = 1000

// benchSizes are the Service counts of BenchmarkBacklog and
// BenchmarkRestart: PIER_BENCH_SERVICES="1000,5000,20000" draws the
// curve; the default is 1000.
func benchSizes(b *testing.B) []int {
	sizes, err := benchenv.Sizes("PIER_BENCH_SERVICES", "1000")
	if err != nil {
		b.Fatal(err)
	}
	return sizes
}

// BenchmarkBacklog: n LoadBalancer Services exist, then a real
// pier-controller process starts; measured is the time until every one has
// an address, with the process's CPU time and peak RSS, the API server's
// CPU in the same time (the split between Pier's work and the API writes
// it asks for), and the writes to the pool's status in that time
// (pool-writes, and per second: at most one a second, however many
// Services are assigned).
func BenchmarkBacklog(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { backlog(b, n) })
	}
}

// scaleCluster holds 20,000 Services: a Service range of 65,536 and no
// node ports (the default range has 2,768).
var scaleCluster = cluster.Options{APIServerFlags: []string{"--service-cluster-ip-range=198.19.0.0/16,2001:db8:ffff::/112"}}

func noNodePorts(s *corev1.Service) { s.Spec.AllocateLoadBalancerNodePorts = ptr.To(false) }

func backlog(b *testing.B, n int) {
	e := newEnv(b, scaleCluster)
	e.create(pool("bench", "198.18.0.0/16"))
	controllerBinary(b) // build outside the measurement
	var sum metricSum
	defer sum.report(b)
	for i := 0; i < b.N; i++ {
		ns := fmt.Sprintf("backlog-%d", i)
		e.create(&corev1.Namespace{ObjectMeta: metaName(ns)})
		createMany(b, e, ns, n, noNodePorts)
		counter := e.countAssigned(b, ns)
		writes := e.countWrites(b, "bench")
		api0, _ := pidUsage(b, e.cluster.APIServerPID())
		start := time.Now()
		p := e.runController(b, "--leader-elect=false", "--workers="+workers())
		counter.waitFor(b, int64(n))
		elapsed := time.Since(start)
		poolWrites := writes.Load()
		cpu, rss := p.usage(b)
		api1, _ := pidUsage(b, e.cluster.APIServerPID())
		if os.Getenv("PIER_BENCH_LOG") != "" {
			b.Logf("start %s\n%s", start.Format(time.RFC3339Nano), p.output())
		}
		p.cmd.Process.Kill()
		<-p.done
		sum.add("s/backlog", elapsed.Seconds())
		sum.add("assigned/s", float64(n)/elapsed.Seconds())
		sum.add("cpu-s", cpu.Seconds())
		sum.add("apiserver-cpu-s", (api1 - api0).Seconds())
		sum.add("peak-RSS-MiB", float64(rss)/(1<<20))
		sum.add("pool-writes", float64(poolWrites))
		sum.add("pool-writes/s", float64(poolWrites)/elapsed.Seconds())
	}
}

// countWrites counts the writes to the IPAddressPool pool from now on:
// the changes of its resourceVersion a watch sees (the controller writes
// only its status).
func (e *env) countWrites(b testing.TB, pool string) *atomic.Int64 {
	wc, err := client.NewWithWatch(e.cluster.Config, client.Options{Scheme: e.c.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	var l v1alpha1.IPAddressPoolList
	if err := e.c.List(context.Background(), &l, client.InNamespace(pierNS)); err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &v1alpha1.IPAddressPoolList{}, client.InNamespace(pierNS),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: l.ResourceVersion}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	var n atomic.Int64
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*v1alpha1.IPAddressPool); ok && ev.Type == watch.Modified && p.Name == pool {
				n.Add(1)
			}
		}
	}()
	return &n
}

// BenchmarkRestart: n Services are assigned, the controller is killed
// and started again; measured is the time from the start until a Service
// created at that moment has an address (the controller first restores
// every allocation from the Services), with its CPU and peak RSS. No
// assigned Service may change address.
func BenchmarkRestart(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { restart(b, n) })
	}
}

func restart(b *testing.B, n int) {
	e := newEnv(b, scaleCluster)
	e.create(pool("bench", "198.18.0.0/16"))
	const ns = "restart"
	e.create(&corev1.Namespace{ObjectMeta: metaName(ns)})
	createMany(b, e, ns, n, noNodePorts)
	counter := e.countAssigned(b, ns)
	first := e.runController(b, "--leader-elect=false", "--workers="+workers())
	counter.waitFor(b, int64(n))
	first.cmd.Process.Kill()
	<-first.done
	before := e.addresses(b, ns)
	var sum metricSum
	defer sum.report(b)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p := e.runController(b, "--leader-elect=false", "--workers="+workers())
		probe := fmt.Sprintf("probe-%d", i)
		if err := e.c.Create(context.Background(), service(ns, probe, noNodePorts)); err != nil {
			b.Fatal(err)
		}
		counter.waitFor(b, int64(n+i+1))
		elapsed := time.Since(start)
		cpu, rss := p.usage(b)
		p.cmd.Process.Kill()
		<-p.done
		sum.add("s/ready-to-assign", elapsed.Seconds())
		sum.add("cpu-s", cpu.Seconds())
		sum.add("peak-RSS-MiB", float64(rss)/(1<<20))
	}
	after := e.addresses(b, ns)
	for name, addr := range before {
		if after[name] != addr {
			b.Errorf("%s moved from %s to %s across the restart", name, addr, after[name])
		}
	}
}

// addresses are the first ingress address of every Service in ns.
func (e *env) addresses(b testing.TB, ns string) map[string]string {
	var l corev1.ServiceList
	if err := e.c.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range l.Items {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			out[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
		}
	}
	return out
}

// BenchmarkLive: a synced pier-controller process is running; 1,000
// Services are created as fast as the client can; measured is the time from
// the last create to every Service having an address.
func BenchmarkLive(b *testing.B) {
	e := newEnv(b)
	e.create(pool("bench", "198.18.0.0/16"))
	p := e.runController(b, "--leader-elect=false", "--workers="+workers())
	var sum metricSum
	defer sum.report(b)
	for i := 0; i < b.N; i++ {
		ns := fmt.Sprintf("live-%d", i)
		e.create(&corev1.Namespace{ObjectMeta: metaName(ns)})
		counter := e.countAssigned(b, ns)
		cpu0, _ := p.usage(b)
		createStart := time.Now()
		createMany(b, e, ns, benchServices)
		lastCreate := time.Now()
		counter.waitFor(b, benchServices)
		cpu1, rss := p.usage(b)
		sum.add("s/after-last-create", time.Since(lastCreate).Seconds())
		sum.add("s/creating", lastCreate.Sub(createStart).Seconds())
		sum.add("cpu-s", (cpu1 - cpu0).Seconds())
		sum.add("peak-RSS-MiB", float64(rss)/(1<<20))
	}
}

// assignedCounter counts the Services of one namespace that have an address,
// from a watch (polling 1,000 Services would load the API server).
type assignedCounter struct{ n atomic.Int64 }

func (e *env) countAssigned(b testing.TB, ns string) *assignedCounter {
	c := &assignedCounter{}
	seen := map[string]bool{}
	f := informers.NewSharedInformerFactoryWithOptions(kubernetes.NewForConfigOrDie(e.cluster.Config), 0, informers.WithNamespace(ns))
	count := func(obj any) {
		if svc, ok := obj.(*corev1.Service); ok && len(svc.Status.LoadBalancer.Ingress) > 0 && !seen[svc.Name] {
			seen[svc.Name] = true // handlers of one informer run one at a time
			c.n.Add(1)
		}
	}
	f.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: count, UpdateFunc: func(_, obj any) { count(obj) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return c
}

func (c *assignedCounter) waitFor(b testing.TB, n int64) {
	b.Helper()
	timeout := 2*time.Minute + time.Duration(n)*10*time.Millisecond
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return c.n.Load() >= n, nil
	})
	if err != nil {
		b.Fatalf("%d of %d Services assigned", c.n.Load(), n)
	}
}

// workers lets a benchmark run try another parallelism: PIER_BENCH_WORKERS.
func workers() string {
	if w := os.Getenv("PIER_BENCH_WORKERS"); w != "" {
		return w
	}
	return "16"
}

// metricSum averages custom metrics over the iterations.
type metricSum struct {
	names []string
	sums  map[string]float64
	n     map[string]int
}

func (m *metricSum) add(name string, v float64) {
	if m.sums == nil {
		m.sums, m.n = map[string]float64{}, map[string]int{}
	}
	if _, ok := m.sums[name]; !ok {
		m.names = append(m.names, name)
	}
	m.sums[name] += v
	m.n[name]++
}

func (m *metricSum) report(b *testing.B) {
	for _, name := range m.names {
		b.ReportMetric(m.sums[name]/float64(m.n[name]), name)
	}
}
