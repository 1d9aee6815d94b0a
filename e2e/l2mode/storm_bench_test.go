package l2mode

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// BenchmarkARPStorm (review finding 6): a host on the segment floods ARP
// requests for the Services' addresses as fast as it can write them for
// stormFor, on the 2-core machine where the speakers, the flood and the
// control plane share the CPU. It reports the storm's rate, the replies
// the speakers sent, and the false failovers: members declared gone
// although no speaker stopped. Run as root:
//
//	go test -run '^$' -bench ARPStorm -benchtime 1x ./e2e/l2mode/
func BenchmarkARPStorm(b *testing.B) {
	const stormFor = 10 * time.Second
	for _, profile := range []string{"fast-lan", "lan"} {
		b.Run("profile="+profile, func(b *testing.B) {
			env := up(b, kubelab.Options{Nodes: 3, SpeakerArgs: []string{"--memberlist-profile", profile}})
			var addrs []netip.Addr
			for i := range 20 {
				addrs = append(addrs, createService(b, env, fmt.Sprintf("storm-%02d", i), noChange))
			}
			for i := 0; i < b.N; i++ {
				gone := countLines(env, `"msg":"member gone"`)
				replies := countReplies(b, env)
				sent := storm(b, env, addrs, stormFor)
				replies = countReplies(b, env) - replies
				falses := countLines(env, `"msg":"member gone"`) - gone
				b.ReportMetric(float64(sent)/stormFor.Seconds(), "requests/s")
				b.ReportMetric(float64(replies)/stormFor.Seconds(), "replies/s")
				b.ReportMetric(float64(falses), "false-failovers/op")
				b.Logf("%s: %d ARP requests in %v (%.0f/s), %d replies seen, %d members declared gone",
					profile, sent, stormFor, float64(sent)/stormFor.Seconds(), replies, falses)
			}
		})
	}
}

// storm sends ARP requests for addrs from the router as fast as it can
// for d and returns how many went out.
func storm(b *testing.B, env *kubelab.Env, addrs []netip.Addr, d time.Duration) int {
	b.Helper()
	var c *arp.Client
	must(b, env.Site.Router.Do(func() error {
		ifi, err := net.InterfaceByName("eth1")
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	}))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	sent := make([]int, 2)
	for w := range sent {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += len(sent) {
				if c.Request(addrs[i%len(addrs)]) == nil {
					sent[w]++
				}
			}
		})
	}
	wg.Wait()
	return sent[0] + sent[1]
}

// countReplies sums the ARP and NDP answers the speakers sent
// (pier_l2_responses_sent_total on every node).
func countReplies(b *testing.B, env *kubelab.Env) int {
	b.Helper()
	n := 0.0
	for _, h := range env.Site.Nodes {
		for _, line := range strings.Split(scrape(b, h, "127.0.0.1:7572"), "\n") {
			if rest, ok := strings.CutPrefix(line, "pier_l2_responses_sent_total{"); ok {
				_, v, _ := strings.Cut(rest, "} ")
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatalf("metric %q: %v", line, err)
				}
				n += f
			}
		}
	}
	return int(n)
}

// countLines counts the lines containing s in every speaker's output.
func countLines(env *kubelab.Env, s string) int {
	n := 0
	for _, p := range env.Speakers {
		if p != nil {
			n += strings.Count(p.Output(), s)
		}
	}
	return n
}
