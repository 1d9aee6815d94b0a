package bgpmode

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BenchmarkServicesToFRR: 1,000 Services created through the API -> all
// 1,000 prefixes in FRR's RIB from every node, timed from the first and
// from the last create (the controller assigns them, so it is included);
// then the withdrawal time after SIGTERM of one speaker; then a backlog
// variant: 1,000 Services created while the controller is stopped, timed
// from its start. Run with -benchtime 1x.
func BenchmarkServicesToFRR(b *testing.B) {
	const n = 1000
	for range b.N {
		w := newWorld(b, false)
		w.configure(false)
		w.waitPrefixes(0, 60*time.Second)

		first := time.Now()
		must(b, w.createMany("live", "bulk", n))
		last := time.Now()
		all := w.waitPrefixesFast(n, 2*time.Minute)
		b.ReportMetric(last.Sub(first).Seconds()*1000, "api-create-ms")
		b.ReportMetric(all.Sub(first).Seconds()*1000, "from-first-create-ms")
		b.ReportMetric(all.Sub(last).Seconds()*1000, "from-last-create-ms")

		start := time.Now()
		must(b, w.env.Speakers[2].Signal(syscall.SIGTERM))
		poll(b, "node3's prefixes gone from FRR", 30*time.Second, func() error {
			got, err := w.frr.PrefixesFrom()
			if err == nil && got[nodeAddr(3)] != 0 {
				err = fmt.Errorf("%d left", got[nodeAddr(3)])
			}
			return err
		})
		b.ReportMetric(time.Since(start).Seconds()*1000, "sigterm-withdraw-ms")
		w.restartSpeaker(3)
		w.waitPrefixes(n, time.Minute)

		must(b, w.deleteMany("live", n))
		w.waitPrefixes(0, 2*time.Minute)
		must(b, w.env.PauseController())
		must(b, w.createMany("backlog", "bulk", n))
		start = time.Now()
		w.env.ResumeController()
		assigned := w.whenAssigned(n)
		all = w.waitPrefixesFast(n, 2*time.Minute)
		b.ReportMetric(all.Sub(start).Seconds()*1000, "backlog-ms")
		b.ReportMetric((<-assigned).Sub(start).Seconds()*1000, "backlog-assigned-ms")
	}
}

// whenAssigned reports when n Services in "default" have an address
// (polled every 100 ms; the zero time if not within two minutes).
func (w *world) whenAssigned(n int) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			var list corev1.ServiceList
			if w.env.Pier.List(context.Background(), &list, client.InNamespace("default")) == nil {
				got := 0
				for _, s := range list.Items {
					if len(s.Status.LoadBalancer.Ingress) > 0 {
						got++
					}
				}
				if got >= n {
					out <- time.Now()
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		out <- time.Time{}
	}()
	return out
}

// waitPrefixesFast polls every 20 ms until FRR has n prefixes from every
// node and returns when it saw them.
func (w *world) waitPrefixesFast(n int, d time.Duration) time.Time {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := w.frr.PrefixesFrom()
		if err == nil && got[nodeAddr(1)] == n && got[nodeAddr(2)] == n && got[nodeAddr(3)] == n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d prefixes from every node: not within %s: %v %v", n, d, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
