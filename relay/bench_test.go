package relay

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pier-lb/pier/relay/kernelpath"
)

// fastUDPBackend echoes datagrams without allocating, so allocs/op measure
// the relay.
func fastUDPBackend(b *testing.B) Backend {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return Backend{Name: "fast", Addr: netip.MustParseAddr("127.0.0.1"),
		Ports: map[string]uint16{"udp": c.LocalAddr().(*net.UDPAddr).AddrPort().Port()}}
}

// udpOnly is a relay with a UDP listener only: with a TCP listener the
// active check would connect to the echo backend's missing TCP port, mark it
// down within a health interval and stall a benchmark that runs longer.
func udpOnly(be Backend) Options {
	return Options{Backends: []Backend{be},
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}}
}

// BenchmarkUDPRelay sends datagrams through the relay to an echo backend and
// back, with a window of datagrams in flight; one op is one datagram each
// way.
func BenchmarkUDPRelay(b *testing.B) {
	for _, size := range []int{64, 1200} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			r := startRelay(b, udpOnly(fastUDPBackend(b)))
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr("udp")))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			out, in := make([]byte, size), make([]byte, 2048)
			c.Write(out) // place the flow before timing
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(in); err != nil {
				b.Fatal(err)
			}
			const window = 16
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			sent, recvd := 0, 0
			for recvd < b.N {
				for sent < b.N && sent-recvd < window {
					if _, err := c.Write(out); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Read(in); err != nil {
					// A datagram was lost (socket buffer): refill the window.
					recvd = sent
					continue
				}
				recvd++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// BenchmarkTCPRelay streams through the relay to an echo backend; one op is
// 1 MiB each way.
func BenchmarkTCPRelay(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	be := Backend{Name: "echo", Addr: netip.MustParseAddr("127.0.0.1"),
		Ports: map[string]uint16{"tcp": uint16(ln.Addr().(*net.TCPAddr).Port)}}
	r := startRelay(b, Options{Backends: []Backend{be}})
	c, err := net.Dial("tcp", r.Addr("tcp").String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	go func() {
		out := make([]byte, chunk)
		for range b.N {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}()
	for range b.N {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUDPRelayManyFlows sends one 64-byte datagram from each of 64
// clients, then reads the 64 replies: bursts reach the listener together,
// as with many callers. One op is one datagram each way.
func BenchmarkUDPRelayManyFlows(b *testing.B) {
	const flows = 64
	r := startRelay(b, udpOnly(fastUDPBackend(b)))
	var cs []*net.UDPConn
	out, in := make([]byte, 64), make([]byte, 2048)
	for range flows {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr("udp")))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.Write(out)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(in); err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
	}
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += flows {
		for _, c := range cs {
			c.Write(out)
		}
		for _, c := range cs {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			c.Read(in) // a lost datagram just costs the deadline
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// BenchmarkPickDuringBackendChanges places new flows (pick, the Maglev
// lookup of a flow's first datagram) while another goroutine changes the
// backends without pause, with the kernel data path on a fake kernel whose
// every write takes 2 ms (a slow netlink request). One op is one new flow;
// p99-ns, p99.9-ns and max-ns are the slowest picks, failed/op the picks that found
// no backend (there always is one).
func BenchmarkPickDuringBackendChanges(b *testing.B) {
	k := &FakeKernel{Apply: func(string, []kernelpath.Listener) error {
		time.Sleep(2 * time.Millisecond)
		return nil
	}}
	r := startRelay(b, Options{Backends: docBackends(0, 3), Clock: clocktesting.NewFakeClock(time.Now()),
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}},
		Kernel:    KernelOptions{Enabled: true, Tables: k}})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.SetBackends(docBackends(i%10, 3)); err != nil {
				panic(err)
			}
		}
	}()
	l := r.opts.Listeners[0]
	lat := make([]time.Duration, 0, b.N)
	lost := 0
	b.ResetTimer()
	for i := range b.N {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), uint16(i))
		start := time.Now()
		if _, err := r.pick(l, client); err != nil {
			lost++ // a backend set always exists: a pick must not fail
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	close(stop)
	<-stopped
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)*999/1000]), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1]), "max-ns")
	b.ReportMetric(float64(lost)/float64(b.N), "failed/op")
}
