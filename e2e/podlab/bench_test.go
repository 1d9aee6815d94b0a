package podlab_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/podlab"
)

// installChart installs Pier with the L2 pool and relays from tag.
func installChart(b testing.TB, e *podlab.Env, tag string) {
	b.Helper()
	if err := e.InstallPier(context.Background(), tag); err != nil {
		b.Fatal(err)
	}
}

func uninstallChart(b testing.TB, e *podlab.Env) {
	b.Helper()
	if _, err := e.Helm(context.Background(), "uninstall", "pier", "-n", podlab.Namespace, "--wait"); err != nil {
		b.Fatal(err)
	}
	if err := e.WaitNoPods(context.Background(), podlab.Namespace, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkInstallToFirstAnswer: helm install to the first call datagram
// answered through a Service's L2 address (backend Pods already running,
// the Service created right after the install).
func BenchmarkInstallToFirstAnswer(b *testing.B) {
	e := cluster(b)
	ctx := context.Background()
	if err := e.DeployCallServers(ctx, "voice-b", "media", 2); err != nil {
		b.Fatal(err)
	}
	installed := false
	b.Cleanup(func() { // a failed iteration leaves the release to the next benchmark
		if installed {
			_, _ = e.Helm(context.Background(), "uninstall", "pier", "-n", podlab.Namespace, "--wait")
		}
	})
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		installChart(b, e, "lab")
		installed = true
		svc := "media"
		if i > 0 {
			_, _ = e.Kubectl(ctx, "-n", "voice-b", "delete", "service", svc, "--wait=true")
		}
		addr, err := e.CreateCallService(ctx, "voice-b", svc, corev1.ServiceExternalTrafficPolicyCluster)
		if err != nil {
			b.Fatal(err)
		}
		call, err := podlab.StartCall(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
		if err != nil {
			b.Fatal(err)
		}
		waitFirstAnswer(b, e, call, addr)
		total += time.Since(start)
		call.Stop()
		uninstallChart(b, e)
		installed = false
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-first-answer")
}

// waitFirstAnswer waits a minute for the call's first answer and, when
// none comes, says who answers ARP for addr and what the Pods and the
// Service look like.
func waitFirstAnswer(b *testing.B, e *podlab.Env, call *podlab.Call, addr netip.Addr) {
	b.Helper()
	ctx := context.Background()
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return call.Answered() > 0, nil
	})
	if err == nil {
		return
	}
	node, mac, arpErr := e.WhoAnswers(ctx, addr)
	objs, _ := e.Kubectl(ctx, "-n", "voice-b", "get", "service,endpointslices,pods", "-o", "wide")
	b.Fatalf("call not answered: %v\n%s answered by %q %q (%v)\n%s\n%s", call.Stats(time.Now()), addr, node, mac, arpErr,
		objs, e.Describe(ctx, podlab.Namespace))
}

// BenchmarkRollingUpgrade: helm upgrade between two tags under a call
// through an L2 address: the call's longest gap, datagrams lost, ARP
// requests answered by two MACs or by none, per upgrade.
func BenchmarkRollingUpgrade(b *testing.B) {
	e := cluster(b)
	ctx := context.Background()
	installChart(b, e, "lab")
	defer uninstallChart(b, e)
	if err := e.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		b.Fatal(err)
	}
	if err := e.DeployCallServers(ctx, "voice-u", "media", 2); err != nil {
		b.Fatal(err)
	}
	addr, err := e.CreateCallService(ctx, "voice-u", "media", corev1.ServiceExternalTrafficPolicyCluster)
	if err != nil {
		b.Fatal(err)
	}
	var gap time.Duration
	var lost, dual, unanswered int
	tags := []string{"lab2", "lab"}
	for i := 0; i < b.N; i++ {
		watch, call := startWatching(b, e, addr)
		args := append([]string{"upgrade", "pier", "charts/pier", "-n", podlab.Namespace, "--reuse-values"}, e.ChartValues(tags[i%2])...)
		if _, err := e.Helm(ctx, args...); err != nil {
			b.Fatal(err)
		}
		if err := e.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
			b.Fatal(err)
		}
		settle(b, call)
		cs, as := checkWatching(b, e, watch, call)
		gap = max(gap, cs.LongestGap)
		lost += cs.Sent - cs.Answered
		dual += as.Dual
		unanswered += as.Unanswered
		checkAddress(b, e, "voice-u", "media", addr)
	}
	b.ReportMetric(float64(gap.Milliseconds()), "max-gap-ms")
	b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
	b.ReportMetric(float64(dual)/float64(b.N), "dual-arp/op")
	b.ReportMetric(float64(unanswered)/float64(b.N), "unanswered-arp/op")
}
