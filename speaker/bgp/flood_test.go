package bgp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/internal/procstat"
	"github.com/pier-lb/pier/speaker/bgp"
)

// floodPrefixes returns n /32s from 10.0.0.0/8: a leaked table that exists
// only inside the lab's router.
func floodPrefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out = append(out, netip.PrefixFrom(a, 32))
	}
	return out
}

// A router that leaks a full table must not grow the speaker: FRR sends
// node1 n prefixes (200,000; PIER_BGP_FLOOD_PREFIXES overrides) over the
// IPv4 session. The speaker must come back to at most its prefix limit, report the event (log, metric, status) and keep
// its own paths announced to the other routers: BIRD, and FRR over the
// IPv6 session, which carries no leaked routes.
func TestPrefixFloodFromPeer(t *testing.T) {
	n := 200000
	if s := os.Getenv("PIER_BGP_FLOOD_PREFIXES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("PIER_BGP_FLOOD_PREFIXES: %v", err)
		}
	}
	const limit = bgp.DefaultMaxPrefixes
	b := newBGPLab(t, 1, floodPrefixes(n)...)
	all := peersFor(md5Right) // FRR wants MD5 from the last node on IPv4 only
	frr, bird, frr6 := all[0], all[1], all[2]
	frr6.Password = ""
	paths := []bgp.Path{{Prefix: vip}, {Prefix: vip6}}

	// Baseline: the speaker with its quiet peers only.
	b.configure(1, []bgp.Peer{bird, frr6}, paths)
	b.waitBIRDEstablished(1)
	b.waitFRREstablished(nodeAddr6(1))
	base := b.mem(1)
	t.Logf("FIGURE: baseline Go heap in use %.1f MiB, RSS %.1f MiB", mib(base.HeapInuse), mib(b.rss(1)))

	start := time.Now()
	b.configure(1, []bgp.Peer{frr, bird, frr6}, paths)
	var st bgp.PeerStatus
	b.poll("the flood received or refused", 180*time.Second, func() error {
		st = b.peerStatus(1, "frr")
		if st.PrefixesReceived >= uint64(n) || strings.Contains(st.LastError, "prefix limit") {
			return nil
		}
		return fmt.Errorf("frr: %+v", st)
	})
	// gobgp closes the session at the first UPDATE over the limit and
	// drops the peer's paths; UPDATEs it had already read are stored
	// until then, so the count may pass the limit for a moment.
	peak := st.PrefixesReceived
	b.poll("the speaker back at most at the limit", 60*time.Second, func() error {
		st = b.peerStatus(1, "frr")
		peak = max(peak, st.PrefixesReceived)
		if st.PrefixesReceived > limit {
			return fmt.Errorf("frr: %d prefixes stored", st.PrefixesReceived)
		}
		return nil
	})
	// Holding the limit's worth of paths and what one UPDATE burst queues
	// is fine; holding the flood (about 380 bytes per /32 in gobgp) is not.
	// FRR sends the flood again each time the session comes back, so the
	// heap is read until it is within the bound: on a loaded machine a
	// read can land in the middle of a refused burst.
	maxGrowth := int64(limit*1<<10 + 4<<20)
	var after helperMem
	var growth int64
	_ = wait.PollUntilContextTimeout(context.Background(), time.Second, 60*time.Second, true, func(context.Context) (bool, error) {
		after = b.mem(1)
		growth = int64(after.HeapInuse) - int64(base.HeapInuse)
		return growth <= maxGrowth, nil
	})
	t.Logf("FIGURE: %d prefixes sent by FRR; after %s: frr prefixes stored %d (most seen %d), last error %q; Go heap in use %.1f MiB (%+.1f MiB, %.0f bytes per sent prefix), RSS %.1f MiB (peak %.1f MiB, with the race detector's share); limit events %v",
		n, time.Since(start).Round(time.Millisecond), st.PrefixesReceived, peak, st.LastError,
		mib(after.HeapInuse), float64(growth)/(1<<20), float64(growth)/float64(n), mib(b.rss(1)), mib(b.peakRSS(1)),
		after.Metrics["pier_bgp_prefix_limit_exceeded_total{peer=frr}"])

	if growth > maxGrowth {
		t.Errorf("Go heap grew by %.1f MiB with the flood, want at most %.1f MiB", float64(growth)/(1<<20), float64(maxGrowth)/(1<<20))
	}
	if !strings.Contains(st.LastError, "prefix limit") {
		t.Errorf("frr last error %q: want the prefix limit named", st.LastError)
	}
	if v := after.Metrics["pier_bgp_prefix_limit_exceeded_total{peer=frr}"]; v < 1 {
		t.Errorf("pier_bgp_prefix_limit_exceeded_total{peer=frr} = %v, want >= 1 (metrics %v)", v, after.Metrics)
	}
	if out := b.procs[1].Output(); !strings.Contains(out, "prefix limit exceeded") || !strings.Contains(out, "peer=frr") {
		t.Errorf("no prefix limit log line naming the peer in:\n%.3000s", b.procs[1].OutputTail(40))
	}
	b.poll("own paths still in BIRD and FRR (IPv6 session)", 20*time.Second, func() error {
		out, err := b.birdc("show", "route", vip.String())
		if err != nil {
			return err
		}
		if !strings.Contains(out, "via 198.51.100.11") {
			return fmt.Errorf("BIRD: %s", out)
		}
		r, err := b.frrRoute(vip6)
		if err != nil {
			return err
		}
		if len(r.Paths) == 0 {
			return fmt.Errorf("FRR has no path for %s", vip6)
		}
		return nil
	})
	nb, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if s := nb[nodeAddr6(1).String()]; s.BGPState != "Established" || s.ConnectionsDropped != 0 {
		t.Errorf("FRR's IPv6 session with node1 %+v: want Established, never dropped", s)
	}
	if out, err := b.birdc("show", "protocols", "node1"); err != nil || !strings.Contains(out, "Established") {
		t.Errorf("BIRD session: %v %s", err, out)
	}
}

func mib(v uint64) float64 { return float64(v) / (1 << 20) }

// mem asks node i's announcer for its heap and metrics (SIGUSR2).
func (b *bgpLab) mem(i int) helperMem {
	b.t.Helper()
	p := b.procs[i]
	seen := strings.Count(p.Output(), "mem: ")
	if err := p.Signal(syscall.SIGUSR2); err != nil {
		b.t.Fatal(err)
	}
	var m helperMem
	b.poll(fmt.Sprintf("memory report from node%d", i), 30*time.Second, func() error {
		out := p.Output()
		if strings.Count(out, "mem: ") <= seen {
			return fmt.Errorf("no report yet")
		}
		line, _, _ := strings.Cut(out[strings.LastIndex(out, "mem: ")+len("mem: "):], "\n")
		return json.Unmarshal([]byte(line), &m)
	})
	return m
}

// peerStatus asks node i's announcer for its status (SIGUSR1) and returns
// the named peer's.
func (b *bgpLab) peerStatus(i int, name string) bgp.PeerStatus {
	b.t.Helper()
	p := b.procs[i]
	seen := strings.Count(p.Output(), "status: ")
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		b.t.Fatal(err)
	}
	var st []bgp.PeerStatus
	b.poll(fmt.Sprintf("status from node%d", i), 30*time.Second, func() error {
		out := p.Output()
		if strings.Count(out, "status: ") <= seen {
			return fmt.Errorf("no status yet")
		}
		line, _, _ := strings.Cut(out[strings.LastIndex(out, "status: ")+len("status: "):], "\n")
		return json.Unmarshal([]byte(line), &st)
	})
	for _, s := range st {
		if s.Name == name {
			return s
		}
	}
	return bgp.PeerStatus{}
}

// rss is node i's announcer's resident set from /proc (the process is
// the test binary itself: ip netns exec and env exec it in place).
func (b *bgpLab) rss(i int) uint64 { return b.procSize(i, procstat.RSS) }

// peakRSS is node i's announcer's largest resident set so far.
func (b *bgpLab) peakRSS(i int) uint64 { return b.procSize(i, procstat.PeakRSS) }

// procSize reads a size of node i's announcer with read (procstat.RSS...).
func (b *bgpLab) procSize(i int, read func(pid int) (int64, error)) uint64 {
	n, err := read(b.procs[i].Pid())
	if err != nil {
		b.t.Fatal(err)
	}
	return uint64(n)
}
