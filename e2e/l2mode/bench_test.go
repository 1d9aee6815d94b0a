package l2mode

import (
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// BenchmarkFirstReply: Service created -> first ARP reply for its address,
// over 50 Services (run with -benchtime 1x).
func BenchmarkFirstReply(b *testing.B) {
	for i := 0; i < b.N; i++ {
		lat := firstReplies(b, 50)
		b.ReportMetric(percentile(lat, 50).Seconds()*1000, "p50-ms")
		b.ReportMetric(percentile(lat, 99).Seconds()*1000, "p99-ms")
	}
}

func firstReplies(b *testing.B, n int) []time.Duration {
	env := up(b, kubelab.Options{Nodes: 3})
	var lat []time.Duration
	for i := range n {
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)})
		p := startProber(b, env.Site.Router, "eth1", addr, 2*time.Millisecond)
		start := time.Now()
		createService(b, env, fmt.Sprintf("svc-%02d", i), func(s *corev1.Service) {
			s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: addr.String()}
		})
		waitProbe(b, p, start, "", allMACs(b, env))
		r, _ := p.firstAfter(start, "")
		lat = append(lat, r.at.Sub(start))
		p.stop()
	}
	return lat
}

// BenchmarkFailover: the gap after the owner's speaker is killed with
// SIGKILL, over 20 runs (run with -benchtime 1x).
func BenchmarkFailover(b *testing.B) {
	for i := 0; i < b.N; i++ {
		gaps := failovers(b, 20)
		b.ReportMetric(percentile(gaps, 50).Seconds()*1000, "p50-ms")
		b.ReportMetric(slices.Max(gaps).Seconds()*1000, "max-ms")
	}
}

func failovers(b *testing.B, n int) []time.Duration {
	env := up(b, kubelab.Options{Nodes: 3})
	addr := createService(b, env, "calls", noChange)
	p := startProber(b, env.Site.Router, "eth1", addr, 5*time.Millisecond)
	macs := allMACs(b, env)
	var gaps []time.Duration
	for range n {
		owner := slices.Index(macs, waitProbe(b, p, time.Now(), "", macs))
		killed := time.Now()
		must(b, env.Speakers[owner].Signal(syscall.SIGKILL))
		waitProbe(b, p, killed, macs[owner], macs)
		r, _ := p.firstAfter(killed, macs[owner])
		gaps = append(gaps, r.at.Sub(killed))
		<-env.Speakers[owner].Done()
		if _, err := env.StartSpeaker(owner); err != nil {
			b.Fatal(err)
		}
		waitRejoined(b, env, owner)
	}
	return gaps
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}
