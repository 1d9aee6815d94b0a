package l2

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

var (
	vip4 = netip.MustParseAddr("198.51.100.200")
	vip6 = netip.MustParseAddr("2001:db8:100::200")
)

// site is a switch with a client (.10) and speakers (.11, .12, ...) on eth1.
type site struct {
	lab      *lab.Lab
	client   *lab.Host
	speakers []*lab.Host
}

func newSite(t *testing.T, speakers int, tools ...string) *site {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, append([]string{"ip"}, tools...)...)
	l := lab.ForTest(t)
	sw, err := l.AddSwitch("seg")
	if err != nil {
		t.Fatal(err)
	}
	s := &site{lab: l}
	add := func(name string, n int) *lab.Host {
		h, err := l.AddHost(name)
		if err == nil {
			err = sw.Connect(h, "eth1",
				netip.MustParsePrefix(fmt.Sprintf("198.51.100.%d/24", n)),
				netip.MustParsePrefix(fmt.Sprintf("2001:db8:100::%d/64", n)))
		}
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	s.client = add("client", 10)
	for i := range speakers {
		s.speakers = append(s.speakers, add(fmt.Sprintf("speaker%d", i+1), 11+i))
		s.waitLinked(t, netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 11+i)))
	}
	return s
}

// waitLinked waits until the client resolves a speaker's own address: new
// links drop what they are given until the kernel has activated them.
func (s *site) waitLinked(t *testing.T, addr netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := s.client.Dial(ctx, "udp", netip.AddrPortFrom(addr, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "the link to "+addr.String(), func() bool {
		_, _ = c.Write([]byte("hello"))
		out, _ := s.client.Run(ctx, "ip", "neigh", "show", addr.String(), "dev", "eth1")
		return strings.Contains(out, "lladdr")
	})
}

// start runs an Announcer whose sockets live in h's namespace; it stops
// when the test ends.
func start(t *testing.T, h *lab.Host, opts Options) *Announcer {
	t.Helper()
	opts.Namespace = h.Do
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after its context ended")
		}
	})
	return a
}

func set(t *testing.T, a *Announcer, desired ...Announcement) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Set(ctx, desired); err != nil {
		t.Fatalf("Set(%v): %v", desired, err)
	}
}

func on(iface string, addrs ...netip.Addr) []Announcement {
	out := make([]Announcement, len(addrs))
	for i, a := range addrs {
		out[i] = Announcement{Addr: a, Iface: iface}
	}
	return out
}

func mac(t *testing.T, h *lab.Host, iface string) string {
	t.Helper()
	var hw string
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err == nil {
			hw = ifi.HardwareAddr.String()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

var macRE = regexp.MustCompile(`(?i)\b([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b`)

// arping asks for addr from h and returns the distinct MACs that answered
// (none when nobody did).
func arping(t *testing.T, h *lab.Host, addr netip.Addr) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := h.Run(ctx, "arping", "-c", "3", "-W", "0.3", "-i", "eth1", addr.String())
	return replyMACs(out, "bytes from")
}

// ndisc6 sends multicast Neighbor Solicitations for addr from h.
func ndisc6(t *testing.T, h *lab.Host, addr netip.Addr) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := h.Run(ctx, "ndisc6", "-m", "-r", "3", "-w", "500", addr.String(), "eth1")
	return replyMACs(out, "Target link-layer address")
}

func replyMACs(out, marker string) []string {
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		if m := macRE.FindString(line); m != "" && !slices.Contains(macs, strings.ToLower(m)) {
			macs = append(macs, strings.ToLower(m))
		}
	}
	return macs
}

// eventually polls cond until it holds or 15 s pass.
// The optional state describes what was seen instead.
func eventually(t *testing.T, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var seen []string
			for _, s := range state {
				seen = append(seen, s())
			}
			t.Fatalf("timed out waiting for %s %v", what, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	_ = (<-ch).Write(&m)
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// capture records the frames of one EtherType a host receives on eth1.
type capture struct {
	conn   *packet.Conn
	mu     sync.Mutex
	frames [][]byte
	done   chan struct{}
}

func startCapture(t *testing.T, h *lab.Host, etherType int) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{})}
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth1")
		if err == nil {
			c.conn, err = packet.Listen(ifi, packet.Raw, etherType, nil)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.frames = append(c.frames, slices.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.conn.Close(); <-c.done })
	return c
}

// count returns how many captured frames match.
func (c *capture) count(match func([]byte) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if match(f) {
			n++
		}
	}
	return n
}

// send writes raw frames from h's eth1.
func send(t *testing.T, h *lab.Host, etherType int, dst net.HardwareAddr, frames ...[]byte) {
	t.Helper()
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth1")
		if err != nil {
			return err
		}
		c, err := packet.Listen(ifi, packet.Raw, etherType, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, f := range frames {
			if _, err := c.WriteTo(f, &packet.Addr{HardwareAddr: dst}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
