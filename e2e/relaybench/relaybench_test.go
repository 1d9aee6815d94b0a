package relaybench

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pier-lb/pier/loadgen"
	"github.com/pier-lb/pier/relay"
)

// TestEchoThroughEachPath runs a second of low-rate traffic over every path
// and checks that it came back, so a benchmark cannot silently measure a
// relay that relays nothing: UDP datagrams (echoed, checked for flow and
// sequence by the generator), TCP requests, a TCP bulk stream confirmed by
// the backend's close, and iperf3.
func TestEchoThroughEachPath(t *testing.T) {
	b := bench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			u, err := b.Loadgen(ctx, loadgen.UDP, Target(k, UDPEcho), "--flows", "4", "--rate", "200", "--duration", "1s", "--loss-timeout", "1s")
			if err != nil {
				t.Fatal(err)
			}
			if u.Sent < 150 || u.Received < u.Sent*95/100 || u.Invalid != 0 {
				t.Errorf("UDP: sent %d, received %d, invalid %d", u.Sent, u.Received, u.Invalid)
			}
			if k == PierKernel {
				// Its TCP is Pier's; what matters is that the kernel, not
				// the relay's socket, carried the datagrams.
				if n := kernelFlows(t, b); n < 4 {
					t.Errorf("UDP: %d flows in conntrack with the kernel data path's mark, want the generator's 4%s", n, b.output(PierKernel))
				}
				return
			}
			rr, err := b.Loadgen(ctx, loadgen.TCPRR, Target(k, TCPEcho), "--flows", "2", "--rate", "100", "--duration", "1s", "--loss-timeout", "1s")
			if err != nil {
				t.Fatal(err)
			}
			if rr.Sent < 80 || rr.Received != rr.Sent || rr.Invalid != 0 {
				t.Errorf("TCP requests: sent %d, received %d, invalid %d", rr.Sent, rr.Received, rr.Invalid)
			}
			bulk, err := b.Loadgen(ctx, loadgen.TCPBulk, Target(k, TCPDiscard), "--flows", "2", "--duration", "500ms")
			if err != nil {
				t.Fatal(err)
			}
			if bulk.Bytes < loadgen.DefaultChunk {
				t.Errorf("TCP bulk: %d bytes", bulk.Bytes)
			}
			mbps, err := b.Iperf3(ctx, Target(k, Iperf), time.Second, 1)
			if err != nil {
				t.Fatal(err)
			}
			if mbps <= 0 {
				t.Errorf("iperf3: %.1f MB/s", mbps)
			}
			t.Logf("UDP %d/%d echoed, p50 %.0f us; TCP %d/%d requests; bulk %.0f MB/s; iperf3 %.0f MB/s",
				u.Received, u.Sent, u.Latency.P50US, rr.Received, rr.Sent, bulk.MBps, mbps)
		})
	}
	if err := b.Running(); err != nil {
		t.Fatal(err)
	}
}

// TestNothingListening is the harness's negative control: a port on the
// relay host with no relay behind it must fail the generator, not report
// figures.
func TestNothingListening(t *testing.T) {
	b := bench(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	target := RelayClientAddr.Addr()
	_, err := b.Loadgen(ctx, loadgen.UDP, netipPort(target, 4000), "--duration", "200ms")
	if err == nil || !strings.Contains(err.Error(), "no echo") {
		t.Errorf("UDP to an empty port: err = %v, want no echo", err)
	}
	_, err = b.Loadgen(ctx, loadgen.TCPBulk, netipPort(target, 4000), "--duration", "200ms")
	if err == nil {
		t.Error("TCP to an empty port: no error")
	}
}

func netipPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// kernelFlows counts the relay host's conntrack entries that carry the
// kernel data path's mark.
func kernelFlows(t *testing.T, b *Bench) int {
	t.Helper()
	var flows []*netlink.ConntrackFlow
	err := b.Relay.Do(func() (err error) {
		flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.Mark&relay.DefaultKernelCtMark != 0 {
			n++
		}
	}
	return n
}
