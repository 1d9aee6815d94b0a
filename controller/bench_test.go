package controller_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const benchServices = 1000

// BenchmarkBacklog: 1,000 LoadBalancer Services exist, then a real
// pier-controller process starts; measured is the time until every one has
// an address, with the process's CPU time and peak RSS.
func BenchmarkBacklog(b *testing.B) {
	e := newEnv(b)
	e.create(pool("bench", "198.18.0.0/16"))
	controllerBinary(b) // build outside the measurement
	var sum metricSum
	defer sum.report(b)
	for i := 0; i < b.N; i++ {
		ns := fmt.Sprintf("backlog-%d", i)
		e.create(&corev1.Namespace{ObjectMeta: metaName(ns)})
		createMany(b, e, ns, benchServices)
		counter := e.countAssigned(b, ns)
		start := time.Now()
		p := e.runController(b, "--leader-elect=false", "--workers="+workers())
		counter.waitFor(b, benchServices)
		elapsed := time.Since(start)
		cpu, rss := p.usage()
		if os.Getenv("PIER_BENCH_LOG") != "" {
			b.Logf("start %s\n%s", start.Format(time.RFC3339Nano), p.output())
		}
		p.cmd.Process.Kill()
		<-p.done
		sum.add("s/backlog", elapsed.Seconds())
		sum.add("cpu-s", cpu.Seconds())
		sum.add("peak-RSS-MiB", float64(rss)/(1<<20))
	}
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
		cpu0, _ := p.usage()
		createStart := time.Now()
		createMany(b, e, ns, benchServices)
		lastCreate := time.Now()
		counter.waitFor(b, benchServices)
		cpu1, rss := p.usage()
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
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
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
