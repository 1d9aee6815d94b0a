package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/internal/benchenv"
)

// BenchmarkBGPAnnouncementStatus: PIER_BENCH_NODES writers (default 13),
// one per node as each speaker runs it, with the default period (1s) and
// client-go's default rate limit, against a real API server; each node
// announces the same n Services (ECMP: every node announces every
// Service) to two peers. Measured:
//   - objects, and API writes (create, update, status, delete) and
//     seconds until every node's objects list the n Services (start);
//   - churn: one Service added every 100 ms for PIER_BENCH_CHURN seconds
//     (default 10), each seen by every node: API writes per second
//     while it lasts and until the objects caught up (changes coalesce
//     within the period: at most one round per node and second);
//   - the JSON size of a full object (etcd refuses objects over 1.5 MB).
func BenchmarkBGPAnnouncementStatus(b *testing.B) {
	sizes, err := benchenv.Sizes("PIER_BENCH_SERVICES", "1000")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { announceBench(b, n) })
	}
}

func announceBench(b *testing.B, n int) {
	e := newAPIEnv(b, cluster.Options{})
	nodes := benchEnvInt(b, "PIER_BENCH_NODES", 13)
	churn := time.Duration(benchEnvInt(b, "PIER_BENCH_CHURN", 10)) * time.Second
	var writes atomic.Int64
	scheme, err := nodeScheme()
	if err != nil {
		b.Fatal(err)
	}
	base, err := client.NewWithWatch(e.cl.Config, client.Options{Scheme: scheme}) // default rate limit, as the speaker's
	if err != nil {
		b.Fatal(err)
	}
	counted := countWrites(base, &writes)
	peers := ipv4Peers("r1", "r2")
	all := manySources(n+int(churn/(100*time.Millisecond))+10, "r1", "r2") // the writers only read it
	for i := 0; i < b.N; i++ {
		writers := make([]*AnnouncementWriter, nodes)
		for k := range writers {
			w, err := NewAnnouncementWriter(AnnouncementOptions{Client: counted, Namespace: "pier-system", Node: fmt.Sprintf("node-%02d-%d", k, i)})
			if err != nil {
				b.Fatal(err)
			}
			writers[k] = w
			runAnnouncementWriter(b, w)
		}
		writes.Store(0)
		start := time.Now()
		for _, w := range writers {
			w.Set(all[:n], peers)
		}
		objs := waitAnnounced(b, e.c, n, nodes)
		b.ReportMetric(float64(objs), "objects")
		b.ReportMetric(float64(writes.Load()), "start-writes")
		b.ReportMetric(time.Since(start).Seconds(), "start-s")

		writes.Store(0)
		start = time.Now()
		total := n
		for tick := time.NewTicker(100 * time.Millisecond); time.Since(start) < churn && total < len(all); <-tick.C {
			total++
			for _, w := range writers {
				w.Set(all[:total], peers)
			}
		}
		changes := total - n
		waitAnnounced(b, e.c, total, nodes)
		elapsed := time.Since(start).Seconds()
		b.ReportMetric(float64(changes)/churn.Seconds(), "churn-changes/s")
		b.ReportMetric(float64(writes.Load())/elapsed, "churn-writes/s")

		full := BGPAnnouncementObjects("node-00", BGPAnnouncements(manySources(min(n, AnnouncementsPerObject), "r1", "r2"), peers))["node-00"]
		raw, err := json.Marshal(full)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(raw))/1024, "object-KiB")
	}
}

// waitAnnounced waits until every node's objects list n Services, and
// returns how many objects there are.
func waitAnnounced(b *testing.B, c client.Client, n, nodes int) int {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var l v1alpha1.BGPAnnouncementStatusList
		if err := c.List(context.Background(), &l, client.InNamespace("pier-system")); err != nil {
			b.Fatal(err)
		}
		per := map[string]int{}
		for _, o := range l.Items {
			per[o.Status.Node] += int(o.Status.ServiceCount)
		}
		done := len(per) >= nodes
		for _, got := range per {
			done = done && got == n
		}
		if done {
			return len(l.Items)
		}
		if time.Now().After(deadline) {
			b.Fatalf("not every node lists %d Services within 10 minutes: %v", n, per)
		}
		time.Sleep(time.Second)
	}
}
