package l2mode

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/internal/procstat"
)

// BenchmarkFailoverAtScale: one Service's address among PIER_BENCH_NODES
// speakers (default 100), each on its own node of the segment, with the
// memberlist profile PIER_BENCH_PROFILE (default fast-lan). It reports
// the speakers' idle CPU and RSS and the members declared gone while
// nothing failed (false suspicions), then the gap after the owner's speaker
// is SIGKILLed and after the owner's segment link is cut, 20 times each.
// Run with -benchtime 1x.
func BenchmarkFailoverAtScale(b *testing.B) {
	profile := cmp.Or(os.Getenv("PIER_BENCH_PROFILE"), "fast-lan")
	env := up(b, kubelab.Options{Nodes: benchNodes(b), SpeakerArgs: []string{"--memberlist-profile", profile}})
	addr := createService(b, env, "calls", noChange)
	macs := allMACs(b, env)
	waitAllSeeAll(b, env)
	p := startProber(b, env.Site.Router, "eth1", addr, 5*time.Millisecond)
	b.Run("idle", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			reportIdle(b, env, 30*time.Second)
		}
	})
	for _, mode := range []string{"sigkill", "linkdown"} {
		b.Run("mode="+mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var gaps []time.Duration
				for range 20 {
					gaps = append(gaps, failOwner(b, env, p, macs, mode))
				}
				b.ReportMetric(percentile(gaps, 50).Seconds()*1000, "p50-ms")
				b.ReportMetric(percentile(gaps, 99).Seconds()*1000, "p99-ms")
				b.ReportMetric(slices.Max(gaps).Seconds()*1000, "max-ms")
			}
		})
	}
}

// benchNodes is PIER_BENCH_NODES, default 100.
func benchNodes(b *testing.B) int {
	s := os.Getenv("PIER_BENCH_NODES")
	if s == "" {
		return 100
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 {
		b.Fatalf("PIER_BENCH_NODES=%q: want a number of nodes, at least 2", s)
	}
	return n
}

// failOwner fails the node answering for the address (mode sigkill: its
// speaker; linkdown: its segment link), returns the time until another
// node answered, then brings the node back and waits until it answers
// again or, when it no longer owns the address, has rejoined.
func failOwner(b *testing.B, env *kubelab.Env, p *prober, macs []string, mode string) time.Duration {
	b.Helper()
	owner := slices.Index(macs, waitProbe(b, p, time.Now(), "", macs))
	n := env.Site.Nodes[owner]
	failed := time.Now()
	switch mode {
	case "sigkill":
		must(b, env.Speakers[owner].Signal(syscall.SIGKILL))
	case "linkdown":
		must(b, n.SetLink("eth1", false))
	}
	waitProbe(b, p, failed, macs[owner], macs)
	r, _ := p.firstAfter(failed, macs[owner])
	switch mode {
	case "sigkill":
		<-env.Speakers[owner].Done()
		if _, err := env.StartSpeaker(owner); err != nil {
			b.Fatal(err)
		}
		waitRejoined(b, env, owner)
	case "linkdown":
		must(b, n.SetLink("eth1", true))
		waitBack(b, env, n.Name)
	}
	return r.at.Sub(failed)
}

// waitAllSeeAll waits until every speaker counts every other node as a
// member: it logged the node joining more often than leaving.
func waitAllSeeAll(b *testing.B, env *kubelab.Env) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 10*time.Minute, true, func(context.Context) (bool, error) {
		for i, p := range env.Speakers {
			live := liveMembers(p.Output())
			for j, n := range env.Site.Nodes {
				if j != i && live[n.Name] <= 0 {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		b.Fatalf("speakers never all saw each other: %v", err)
	}
}

// waitBack waits, after node's link came back, until every other speaker
// counts it as a member again.
func waitBack(b *testing.B, env *kubelab.Env, node string) {
	b.Helper()
	timeout := 2*time.Minute + time.Duration(len(env.Speakers))*time.Second
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		for i, p := range env.Speakers {
			if env.Site.Nodes[i].Name != node && liveMembers(p.Output())[node] <= 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		b.Fatalf("%s never rejoined after its link came back: %v", node, err)
	}
}

// liveMembers is, by peer, how many more times a speaker's output says the
// peer joined than that it left: 1 for a member, 0 for a node it counts
// as gone.
func liveMembers(output string) map[string]int {
	live := map[string]int{}
	for _, line := range strings.Split(output, "\n") {
		i := strings.Index(line, `"peer":"`)
		if i < 0 {
			continue
		}
		peer, _, _ := strings.Cut(line[i+len(`"peer":"`):], `"`)
		switch {
		case strings.Contains(line, `"msg":"member joined"`):
			live[peer]++
		case strings.Contains(line, `"msg":"member gone"`):
			live[peer]--
		}
	}
	return live
}

// reportIdle measures the speakers over d with nothing changing: CPU per
// speaker (percent of a core), RSS, and the members declared gone (false
// suspicions: nothing failed), per hour, the API server's requests per
// second other than watches (from every client: an upper bound of the
// speakers'), and the bytes per second a node sends on the segment
// (memberlist's probes and gossip; nothing else talks there while idle).
func reportIdle(b *testing.B, env *kubelab.Env, d time.Duration) {
	b.Helper()
	cpu0, req0, tx0 := speakersCPU(b, env), apiRequests(b, env), segmentTx(b, env)
	gone0 := countLines(env, `"msg":"member gone"`)
	time.Sleep(d) // the idle period is what is measured
	cpu := speakersCPU(b, env) - cpu0
	falses := countLines(env, `"msg":"member gone"`) - gone0
	req := apiRequests(b, env)
	reqs := req[""] - req0[""] - 1 // the second read counts the first
	for k, v := range req {
		if k != "" && v > req0[k] {
			b.Logf("idle API requests: %s %.0f", k, v-req0[k])
		}
	}
	var txRate []float64
	for i, tx := range segmentTx(b, env) {
		txRate = append(txRate, float64(tx-tx0[i])/d.Seconds())
	}
	slices.Sort(txRate)
	b.ReportMetric(reqs/d.Seconds(), "api-requests/s")
	// The median node: the owner also answers the prober's ARP requests.
	b.ReportMetric(txRate[len(txRate)/2], "segment-tx-B/s-per-node")
	var rss []float64
	for _, p := range env.Speakers {
		rss = append(rss, rssMiB(b, p.Pid()))
	}
	n := float64(len(env.Speakers))
	b.ReportMetric(100*cpu.Seconds()/d.Seconds()/n, "cpu-%-per-speaker")
	b.ReportMetric(sum(rss)/n, "rss-MiB-mean")
	b.ReportMetric(slices.Max(rss), "rss-MiB-max")
	b.ReportMetric(float64(falses)*float64(time.Hour)/float64(d), "false-gone/h")
}

// speakersCPU is the user and system CPU time all speakers used so far.
func speakersCPU(b *testing.B, env *kubelab.Env) time.Duration {
	b.Helper()
	var total time.Duration
	for _, p := range env.Speakers {
		cpu, err := procstat.CPU(p.Pid())
		if err != nil {
			b.Fatal(err)
		}
		total += cpu
	}
	return total
}

func rssMiB(b *testing.B, pid int) float64 {
	b.Helper()
	rss, err := procstat.RSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	return float64(rss) / (1 << 20)
}

// apiRequests is the number of requests the API server has served, watches
// excepted, from its own metrics, in all and by verb and resource.
func apiRequests(b *testing.B, env *kubelab.Env) map[string]float64 {
	b.Helper()
	raw, err := env.Client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("read the API server's metrics: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		b.Fatalf("parse the API server's metrics: %v", err)
	}
	out := map[string]float64{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["verb"] != "WATCH" {
			out[""] += m.GetCounter().GetValue()
			out[labels["verb"]+" "+cmp.Or(labels["resource"], "-")+"/"+labels["subresource"]] += m.GetCounter().GetValue()
		}
	}
	return out
}

// segmentTx is the bytes each node has sent on its segment link.
func segmentTx(b *testing.B, env *kubelab.Env) []uint64 {
	b.Helper()
	var tx []uint64
	for _, n := range env.Site.Nodes {
		v, err := n.TxBytes("eth1")
		if err != nil {
			b.Fatal(err)
		}
		tx = append(tx, v)
	}
	return tx
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}
