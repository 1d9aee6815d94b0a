package bgp_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/internal/benchenv"
	"github.com/pier-lb/pier/internal/procstat"
	"github.com/pier-lb/pier/speaker/bgp"
)

// BenchmarkBGPAtScale: PIER_BENCH_NODES announcer processes (default
// 100), each in its own node namespace with its own address, peer with
// one FRR bgpd and each announce the same PIER_BENCH_PREFIXES /32s
// (default 20,000), so FRR holds nodes x prefixes paths (ECMP). Both
// variables take a list; every pair runs as its own sub-benchmark. It
// reports, per round:
//
//   - converge-s: from starting the announcers until FRR counts every
//     prefix from every node (pfxRcd) and the last prefix has a path from
//     each (spawned-s, established-s: until all processes started, all
//     sessions up); bgpd's RSS and CPU then, and the announcers' RSS,
//     anonymous memory (their own, without the shared binary) and CPU.
//   - add-ms, withdraw-ms: with that table present, one prefix added on
//     every node (SIGHUP with the new list) until FRR has it from every
//     node, then removed until FRR has it from none; p50 and max of 10,
//     and the CPU each announcer spent per change.
//   - stop-s: one announcer SIGTERMed until FRR has none of its paths.
//
// FRR is polled with counts (`show bgp ipv4 unicast summary json`) and
// single prefixes, never the table. Run with -benchtime 1x.
//
//	PIER_BENCH_NODES=10,100 PIER_BENCH_PREFIXES=2000,20000 go test -run '^$' -bench BGPAtScale -benchtime 1x -timeout 60m ./speaker/bgp/
func BenchmarkBGPAtScale(b *testing.B) {
	nodes, err := benchenv.Sizes("PIER_BENCH_NODES", "100")
	if err != nil {
		b.Fatal(err)
	}
	prefixes, err := benchenv.Sizes("PIER_BENCH_PREFIXES", "20000")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range nodes {
		for _, p := range prefixes {
			b.Run(fmt.Sprintf("nodes=%d/prefixes=%d", n, p), func(b *testing.B) {
				if n > lab.MaxSiteNodes || p >= 1<<16 {
					b.Fatalf("at most %d nodes and %d prefixes", lab.MaxSiteNodes, 1<<16-1)
				}
				s := newScaleLab(b, n)
				for b.Loop() {
					s.round(p)
				}
			})
		}
	}
}

// scaleLab is a site whose router runs FRR bgpd alone: every node is a
// passive eBGP neighbor that FRR takes every path from and sends nothing
// (a ToR's usual policy towards servers), with ECMP over all nodes.
type scaleLab struct {
	*bgpLab
	nodes int
}

// maxPathsFRR is the most ECMP paths this FRR build takes (`maximum-paths`).
const maxPathsFRR = 64

func newScaleLab(b *testing.B, nodes int) *scaleLab {
	l := newFRRLab(b, func(l *lab.Lab) (*lab.Site, error) { return l.BuildSite(lab.SiteOptions{Nodes: nodes}) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "frr defaults traditional\nhostname %s\nlog stdout informational\n!\n", l.frrName)
	sb.WriteString("route-map pier-in permit 10\n!\nroute-map pier-out deny 10\n!\n")
	fmt.Fprintf(&sb, "router bgp %d\n bgp router-id 198.51.100.1\n", routerASN)
	fmt.Fprintf(&sb, " neighbor pier peer-group\n neighbor pier remote-as %d\n neighbor pier passive\n", nodeASN)
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, " neighbor %s peer-group pier\n", nodeAddr(i))
	}
	fmt.Fprintf(&sb, " address-family ipv4 unicast\n  maximum-paths %d\n", min(nodes, maxPathsFRR))
	sb.WriteString("  neighbor pier route-map pier-in in\n  neighbor pier route-map pier-out out\n exit-address-family\n!\n")
	if _, err := lab.FRRRunDir(l.frrName); err != nil {
		b.Fatal(err)
	}
	l.frr = l.startDaemon("bgpd", sb.String(), "show bgp summary json")
	return &scaleLab{bgpLab: l, nodes: nodes}
}

// round starts every announcer with prefixes paths and measures; it ends
// with every announcer stopped and FRR's table empty.
func (s *scaleLab) round(prefixes int) {
	b := s.t.(*testing.B)
	cpu0 := s.cpu(s.frr.Pid())
	start := time.Now()
	for i := 1; i <= s.nodes; i++ {
		s.start(i, prefixes)
	}
	spawned := time.Since(start)
	s.waitEstablished(30 * time.Minute)
	established := time.Since(start)
	s.waitCounts("every node's prefixes", 30*time.Minute, func(i int) int { return prefixes })
	s.waitPaths(lastPrefix(prefixes), s.nodes, 10*time.Minute)
	converge := time.Since(start)
	b.ReportMetric(converge.Seconds(), "converge-s")
	b.ReportMetric(established.Seconds(), "established-s")
	b.ReportMetric(spawned.Seconds(), "spawned-s")
	b.ReportMetric(float64(s.cpu(s.frr.Pid())-cpu0)/float64(time.Second), "bgpd-cpu-s")
	b.ReportMetric(mib(s.procSize0(s.frr.Pid(), procstat.RSS)), "bgpd-rss-MiB")
	var rss, anon, cpu []float64
	for i := 1; i <= s.nodes; i++ {
		rss = append(rss, mib(s.rss(i)))
		anon = append(anon, mib(s.procSize0(s.procs[i].Pid(), anonymous)))
		cpu = append(cpu, float64(s.cpu(s.procs[i].Pid()))/float64(time.Second))
	}
	b.ReportMetric(sum(rss)/float64(s.nodes), "announcer-rss-MiB-mean")
	b.ReportMetric(slices.Max(rss), "announcer-rss-MiB-max")
	b.ReportMetric(sum(anon)/float64(s.nodes), "announcer-anon-MiB-mean")
	b.ReportMetric(sum(cpu)/float64(s.nodes), "announcer-cpu-s-mean")
	b.Logf("%d nodes x %d prefixes: all started after %v, sessions established after %v, converged in %v; bgpd RSS %.0f MiB; announcer RSS mean %.1f MiB, max %.1f MiB; anonymous memory sum %.0f MiB",
		s.nodes, prefixes, spawned.Round(time.Millisecond), established.Round(time.Millisecond), converge.Round(time.Millisecond),
		mib(s.procSize0(s.frr.Pid(), procstat.RSS)), sum(rss)/float64(s.nodes), slices.Max(rss), sum(anon))

	s.changes(prefixes)

	start = time.Now()
	last := s.procs[s.nodes]
	if err := last.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	s.waitCounts("the stopped node's prefixes gone", 10*time.Minute, func(i int) int {
		if i == s.nodes {
			return 0
		}
		return prefixes
	})
	s.waitPaths(lastPrefix(prefixes), s.nodes-1, 10*time.Minute)
	s.waitPaths(firstPrefix(), s.nodes-1, 10*time.Minute)
	stop := time.Since(start)
	b.ReportMetric(stop.Seconds(), "stop-s")
	b.Logf("SIGTERM to node%d: its %d paths gone from FRR in %v", s.nodes, prefixes, stop.Round(time.Millisecond))
	<-last.Done()
	delete(s.procs, s.nodes)
	s.stopAll()
}

// changes adds one prefix on every node and removes it again, 10 times.
func (s *scaleLab) changes(prefixes int) {
	b := s.t.(*testing.B)
	extra := lastPrefix(prefixes + 1)
	var add, withdraw []time.Duration
	cpu0 := s.announcersCPU()
	for range 10 {
		for _, step := range []struct {
			n     int
			paths int
			out   *[]time.Duration
		}{{prefixes + 1, s.nodes, &add}, {prefixes, 0, &withdraw}} {
			start := time.Now()
			for i := 1; i <= s.nodes; i++ {
				s.reconfigure(i, step.n)
			}
			s.waitPaths(extra, step.paths, 5*time.Minute)
			*step.out = append(*step.out, time.Since(start))
		}
	}
	perChange := (s.announcersCPU() - cpu0) / time.Duration(len(add)+len(withdraw)) / time.Duration(s.nodes)
	b.ReportMetric(float64(perChange.Microseconds())/1000, "announcer-cpu-ms/change")
	b.ReportMetric(p50(add), "add-p50-ms")
	b.ReportMetric(float64(slices.Max(add).Microseconds())/1000, "add-max-ms")
	b.ReportMetric(p50(withdraw), "withdraw-p50-ms")
	b.ReportMetric(float64(slices.Max(withdraw).Microseconds())/1000, "withdraw-max-ms")
	b.Logf("one prefix on all %d nodes: add %v; withdraw %v; CPU per announcer and change %v", s.nodes, add, withdraw, perChange)
}

func firstPrefix() netip.Prefix { return manyPaths(1)[0].Prefix }

// lastPrefix is the n-th of manyPaths.
func lastPrefix(n int) netip.Prefix { return manyPaths(n)[n-1].Prefix }

func scalePeers() []bgp.Peer {
	return []bgp.Peer{{Name: "frr", Address: netip.MustParseAddr("198.51.100.1"), MyASN: nodeASN, PeerASN: routerASN,
		HoldTime: 90 * time.Second, ConnectTime: time.Second}}
}

// writeConfig writes node i's announcer config: FRR and manyPaths(n),
// which the announcer makes itself.
func (s *scaleLab) writeConfig(i, n int) string {
	cfg, err := json.Marshal(helperConfig{RouterID: nodeAddr(i), WarnAfter: time.Minute, Peers: scalePeers(), ManyPaths: n})
	if err != nil {
		s.t.Fatal(err)
	}
	file := filepath.Join(s.dir, fmt.Sprintf("node%d.json", i))
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return file
}

// start starts node i's announcer with n paths; it does not wait.
func (s *scaleLab) start(i, n int) {
	file := s.writeConfig(i, n)
	p, err := s.site.Nodes[i-1].Start("env", "PIER_BGP_TEST_ROLE=announcer", "PIER_BGP_TEST_CONFIG="+file, os.Args[0])
	if err != nil {
		s.t.Fatal(err)
	}
	s.procs[i] = p
}

// reconfigure makes node i's announcer take n paths (SIGHUP).
func (s *scaleLab) reconfigure(i, n int) {
	s.writeConfig(i, n)
	if err := s.procs[i].Signal(syscall.SIGHUP); err != nil {
		s.t.Fatal(err)
	}
}

// stopAll SIGTERMs every announcer and waits until FRR holds nothing.
func (s *scaleLab) stopAll() {
	for _, p := range s.procs {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			s.t.Fatal(err)
		}
	}
	for i, p := range s.procs {
		<-p.Done()
		delete(s.procs, i)
	}
	s.waitCounts("FRR empty", 10*time.Minute, func(int) int { return 0 })
}

// waitCounts polls FRR's per-neighbor prefix counts until node i's is
// want(i) for every node (a session that is not established counts 0).
func (s *scaleLab) waitCounts(what string, within time.Duration, want func(i int) int) {
	s.t.Helper()
	lab.Poll(s.t, what, 200*time.Millisecond, within, func() error {
		s.checkMemory()
		got, err := s.counts()
		if err != nil {
			return err
		}
		var wrong []string
		for i := 1; i <= s.nodes; i++ {
			if g := got[nodeAddr(i).String()]; g != want(i) {
				wrong = append(wrong, fmt.Sprintf("node%d: %d, want %d", i, g, want(i)))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%d nodes off, e.g. %s", len(wrong), strings.Join(wrong[:min(3, len(wrong))], "; "))
		}
		return nil
	})
}

// waitEstablished polls FRR until every node's session is established.
func (s *scaleLab) waitEstablished(within time.Duration) {
	s.t.Helper()
	lab.Poll(s.t, "every session established", 200*time.Millisecond, within, func() error {
		s.checkMemory()
		got, err := s.counts()
		if err != nil {
			return err
		}
		if len(got) < s.nodes {
			return fmt.Errorf("%d of %d established", len(got), s.nodes)
		}
		return nil
	})
}

// counts is FRR's accepted prefix count per established neighbor.
func (s *scaleLab) counts() (map[string]int, error) {
	var sum struct {
		Peers map[string]struct {
			PfxRcd int    `json:"pfxRcd"`
			State  string `json:"state"`
		} `json:"peers"`
	}
	if err := s.vtyshJSON("show bgp ipv4 unicast summary json", &sum); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for a, p := range sum.Peers {
		if p.State == "Established" {
			out[a] = p.PfxRcd
		}
	}
	return out, nil
}

// waitPaths polls FRR until prefix p has n paths.
func (s *scaleLab) waitPaths(p netip.Prefix, n int, within time.Duration) {
	s.t.Helper()
	lab.Poll(s.t, fmt.Sprintf("%s with %d paths", p, n), 10*time.Millisecond, within, func() error {
		s.checkMemory()
		r, err := s.frrRoute(p)
		if err != nil {
			return err
		}
		if len(r.Paths) != n {
			return fmt.Errorf("%d paths", len(r.Paths))
		}
		return nil
	})
}

// minAvailable is the memory the benchmark leaves the machine: below it,
// it stops rather than push others out.
const minAvailable = 2 << 30

// checkMemory fails the benchmark when the machine's available memory
// is below minAvailable.
func (s *scaleLab) checkMemory() {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		s.t.Fatal(err)
	}
	avail, err := meminfoField(string(b), "MemAvailable")
	if err != nil {
		s.t.Fatal(err)
	}
	if avail < minAvailable {
		s.t.Fatalf("only %.0f MiB of memory available: stopping", mib(uint64(avail)))
	}
}

// meminfoField is the named field of /proc/meminfo, in bytes.
func meminfoField(meminfo, name string) (int64, error) {
	for _, line := range strings.Split(meminfo, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no %s", name)
}

// anonymous is a process's anonymous resident memory (its heap and
// stacks: what it does not share with the other announcers).
func anonymous(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	return meminfoField(string(b), "Anonymous")
}

// announcersCPU is the CPU time the running announcers used so far.
func (s *scaleLab) announcersCPU() time.Duration {
	var total time.Duration
	for _, p := range s.procs {
		total += s.cpu(p.Pid())
	}
	return total
}

func (s *scaleLab) cpu(pid int) time.Duration {
	d, err := procstat.CPU(pid)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *scaleLab) procSize0(pid int, read func(int) (int64, error)) uint64 {
	n, err := read(pid)
	if err != nil {
		s.t.Fatal(err)
	}
	return uint64(n)
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}
