package relaymode

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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/lab"
)

const (
	floodPort     = 16390
	floodMaxFlows = 2000
	floodFlows    = 20000
	// perFlow is relay/doc.go's documented user memory of one UDP flow.
	perFlow = 11 << 10
)

// floodRelay is a Relay for 2,000 UDP flows whose idle flows expire after
// 5 s.
func floodRelay() *v1alpha1.Relay {
	return &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flood"},
		Spec: v1alpha1.RelaySpec{
			Listeners: []v1alpha1.RelayListener{{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: floodPort}},
			Backend:   v1alpha1.RelayBackend{ServiceName: backendSvc, HealthCheckPort: backendTCP},
			Exposure:  v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer},
			Timeouts:  v1alpha1.RelayTimeouts{UDPIdle: &metav1.Duration{Duration: 5 * time.Second}},
			Limits:    v1alpha1.RelayLimits{MaxFlows: floodMaxFlows},
		},
	}
}

// TestFlood: 20,000 new UDP flows (one datagram from each of 20,000 client
// ports) against a Relay limited to 2,000 flows. The relay's memory stays
// bounded (at most three times the documented 11 KiB per flow for the
// 2,000 it takes), the calls already placed keep working throughout, the
// refused flows are counted as table-full drops, and once the flood's flows
// have idled out new flows are taken again.
func TestFlood(t *testing.T) {
	s := up(t)
	cl := s.env.Site.Client
	addr := s.createRelay(t, floodRelay())[0]
	dst := netip.AddrPortFrom(addr, floodPort)
	o := s.ownerNode(t, addr)
	src := &ports{next: 30000} // above the flood's ports
	calls := openFlows(t, cl, src, dst, 20, servers...)
	pid := s.relays[o].Pid()
	rss := vmRSS(t, pid)

	// The calls go on during the flood, a datagram every 20 ms round the 20.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var callErrs []error
	asked := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			f := calls[i%len(calls)]
			w, err := f.ask(dst, fmt.Sprintf("during %d", i), 10)
			asked++
			if err == nil && w.Name != f.server {
				err = fmt.Errorf("flow %s was on %s, reached %s during the flood", f.src, f.server, w.Name)
			}
			if err != nil {
				callErrs = append(callErrs, err)
			}
		}
	})
	before := s.floodCounts(t)
	start := time.Now()
	flood(t, cl, dst, 2000, floodFlows)
	took := time.Since(start)
	peak := vmRSS(t, pid)
	after := s.floodCounts(t)
	time.Sleep(time.Second) // the calls keep going a moment after the flood
	close(stop)
	wg.Wait()
	for _, err := range callErrs {
		t.Error(err)
	}
	// Flows as the flood ended (the idle timer is 5 s), drops once the
	// relays have read what was queued.
	for i, late := range s.floodCounts(t) {
		after[i].drops, after[i].evicted, after[i].kernel = late.drops, late.evicted, late.kernel
	}
	if o2 := s.ownerNode(t, addr); o2 != o {
		t.Logf("%s moved from node%d to node%d during the flood", addr, o+1, o2+1)
	}
	// Every flood datagram is accounted for on whichever node received it
	// (the owner, unless the address moved): a flow taken (still in the
	// table, or evicted from the full table by a later one), a table-full
	// drop (while every flow was within its grace time), or a drop by the
	// kernel before the relay read it (a few per cent may be lost
	// otherwise).
	var taken, drops, evicted, kernel float64
	for i := range after {
		d := after[i].minus(before[i])
		t.Logf("node%d: %v active flows (limit %d), %v new, %v evicted, %v table-full drops, %v dropped by the kernel (socket buffer full)",
			i+1, after[i].active, floodMaxFlows, d.active+d.evicted, d.evicted, d.drops, d.kernel)
		if after[i].active > floodMaxFlows {
			t.Errorf("node%d: %v active flows, limit %d", i+1, after[i].active, floodMaxFlows)
		}
		taken, drops, evicted, kernel = taken+d.active+d.evicted, drops+d.drops, evicted+d.evicted, kernel+d.kernel
	}
	t.Logf("flood of %d flows in %v: %v taken (%v of them evicted), %v table-full drops, %v kernel drops; owner's relay RSS %s before, %s after (%s more); %d datagrams of the calls answered during the flood",
		floodFlows, took.Round(time.Millisecond), taken, evicted, drops, kernel, mib(rss), mib(peak), mib(peak-rss), asked-len(callErrs))
	if drops+evicted == 0 || taken+drops+kernel < 0.95*floodFlows {
		t.Errorf("%v flows taken (%v evicted), %v table-full drops and %v kernel drops, want the table full and the %d flows of the flood accounted for", taken, evicted, drops, kernel, floodFlows)
	}
	if bound := int64(3 * floodMaxFlows * perFlow); peak-rss > bound {
		t.Errorf("relay RSS grew by %s during the flood, bound %s (3 x 11 KiB x %d flows)", mib(peak-rss), mib(bound), floodMaxFlows)
	}

	took = waitNewFlows(t, cl, src, dst, 30*time.Second, servers...)
	t.Logf("new flows taken again %v after the flood", took.Round(time.Millisecond))
}

// floodCount is what one node did with the flood's datagrams.
type floodCount struct{ active, drops, evicted, kernel float64 }

func (c floodCount) minus(d floodCount) floodCount {
	return floodCount{c.active - d.active, c.drops - d.drops, c.evicted - d.evicted, c.kernel - d.kernel}
}

// floodCounts reads every node's relay counters for the flood Relay: its
// active UDP flows, its table-full drops and evictions, and the node's UDP receive
// buffer errors.
func (s *site) floodCounts(t testing.TB) []floodCount {
	t.Helper()
	out := make([]floodCount, len(s.env.Site.Nodes))
	for i := range out {
		out[i] = s.floodCount(t, i)
	}
	return out
}

// floodCount is floodCounts for node i alone.
func (s *site) floodCount(t testing.TB, i int) floodCount {
	t.Helper()
	return floodCount{
		active:  s.relayMetric(t, i, `pier_relay_active_flows{proto="udp",relay="voice/flood"}`),
		drops:   s.relayMetric(t, i, `pier_relay_drops_total{proto="udp",reason="table-full",relay="voice/flood"}`),
		evicted: s.relayMetric(t, i, `pier_relay_udp_flows_evicted_total{relay="voice/flood"}`),
		kernel:  float64(udpRcvbufErrors(t, s.env.Site.Nodes[i])),
	}
}

// flood sends one datagram to dst from each of n client ports from first
// on, four senders in parallel.
func flood(t testing.TB, h *lab.Host, dst netip.AddrPort, first, n int) {
	t.Helper()
	cv4, _ := clientAddrs()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for p := first + w; p < first+n; p += 4 {
				pc, err := h.ListenPacket("udp4", netip.AddrPortFrom(cv4, uint16(p)).String())
				if err != nil {
					errs <- err
					return
				}
				_, err = pc.WriteTo([]byte("flood"), net.UDPAddrFromAddrPort(dst))
				pc.Close()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("flood: %v", err)
	}
}

// udpRcvbufErrors is the UDP receive buffer errors counter of h's network
// namespace (datagrams the kernel dropped because a socket's buffer was
// full).
func udpRcvbufErrors(t testing.TB, h *lab.Host) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Udp RcvbufErrors in %s's /proc/net/snmp", h.Name)
	return 0
}
