package l2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"
)

// isGratuitousARP matches an ARP announcement of addr.
func isGratuitousARP(addr netip.Addr) func([]byte) bool {
	return func(f []byte) bool {
		var p arp.Packet
		if len(f) < ethHeaderLen+arpLen || p.UnmarshalBinary(f[ethHeaderLen:]) != nil {
			return false
		}
		return p.Operation == arp.OperationRequest && p.SenderIP == addr && p.TargetIP == addr
	}
}

// isUnsolicitedNA matches an advertisement of addr to all nodes.
func isUnsolicitedNA(addr netip.Addr) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < ethHeaderLen+ipv6HeaderLen+nsLen || binary.BigEndian.Uint16(f[12:14]) != etherTypeIPv6 {
			return false
		}
		icmp := f[ethHeaderLen+ipv6HeaderLen:]
		dst := netip.AddrFrom16([16]byte(f[ethHeaderLen+24 : ethHeaderLen+40]))
		target := netip.AddrFrom16([16]byte(icmp[8:24]))
		return icmp[0] == 136 && dst == allNodes && target == addr
	}
}

// TestGratuitousBurstOnceForNewAddresses drives the burst with a fake
// clock: the first frame goes out at Set, the second one interval later,
// each later one after twice the wait before, and a repeated Set sends
// nothing.
func TestGratuitousBurstOnceForNewAddresses(t *testing.T) {
	s := newSite(t, 1)
	clk := clocktesting.NewFakeClock(time.Now())
	m := NewMetrics(prometheus.NewRegistry())
	a := start(t, s.speakers[0], Options{Clock: clk, Metrics: m, GratuitousCount: 3, GratuitousInterval: time.Second})
	arps := startCapture(t, s.client, etherTypeARP)
	nas := startCapture(t, s.client, etherTypeIPv6)
	desired := on("eth1", vip4, vip6)

	set(t, a, desired...)
	for n := 1; n <= 3; n++ {
		eventually(t, fmt.Sprintf("gratuitous frame %d", n), func() bool {
			return arps.count(isGratuitousARP(vip4)) == n && nas.count(isUnsolicitedNA(vip6)) == n
		}, func() string {
			return fmt.Sprintf("%d ARPs, %d NAs", arps.count(isGratuitousARP(vip4)), nas.count(isUnsolicitedNA(vip6)))
		})
		if n < 3 {
			wait := time.Second << (n - 1)
			eventually(t, "the bursts to wait", func() bool { return clk.Waiters() == 2 })
			clk.Step(wait - time.Millisecond)
			if clk.Waiters() != 2 {
				t.Fatalf("frame %d went out before %v", n+1, wait)
			}
			clk.Step(time.Millisecond)
		}
	}
	if got := value(m.gratuitous.WithLabelValues("ipv4")); got != 3 {
		t.Errorf("gratuitous_sent_total{ipv4} = %v, want 3", got)
	}

	set(t, a, desired...) // again: nothing new
	if clk.HasWaiters() {
		t.Errorf("a repeated Set started a burst")
	}
	marker := netip.MustParseAddr("198.51.100.201")
	set(t, a, append(desired, on("eth1", marker)...)...)
	eventually(t, "the marker's announcement", func() bool { return arps.count(isGratuitousARP(marker)) == 1 })
	clk.Step(10 * time.Second)
	eventually(t, "the marker's burst", func() bool { return arps.count(isGratuitousARP(marker)) == 2 })
	if got := arps.count(isGratuitousARP(vip4)); got != 3 {
		t.Errorf("%d gratuitous ARPs for %s after repeating the Set, want still 3", got, vip4)
	}
	if got := nas.count(isUnsolicitedNA(vip6)); got != 3 {
		t.Errorf("%d unsolicited NAs for %s after repeating the Set, want still 3", got, vip6)
	}
}

// TestTakeoverMovesClientNeighbourEntry moves the addresses from one
// speaker to another and waits for the client's kernel to follow.
func TestTakeoverMovesClientNeighbourEntry(t *testing.T) {
	s := newSite(t, 2)
	old, next := start(t, s.speakers[0], Options{}), start(t, s.speakers[1], Options{})
	oldMAC, nextMAC := mac(t, s.speakers[0], "eth1"), mac(t, s.speakers[1], "eth1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	neigh := func(addr netip.Addr) string {
		out, _ := s.client.Run(ctx, "ip", "neigh", "show", addr.String(), "dev", "eth1")
		return out
	}

	set(t, old, on("eth1", vip4, vip6)...)
	for _, addr := range []netip.Addr{vip4, vip6} {
		// Nobody listens; resolving the address fills the table.
		c, err := s.client.Dial(ctx, "udp", netip.AddrPortFrom(addr, 9).String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("hello"))
		c.Close()
		eventually(t, "the client to resolve "+addr.String(), func() bool { return strings.Contains(neigh(addr), oldMAC) })
	}
	begin := time.Now()
	set(t, old)
	set(t, next, on("eth1", vip4, vip6)...)
	for _, addr := range []netip.Addr{vip4, vip6} {
		eventually(t, "the client to learn the new owner of "+addr.String(), func() bool {
			return strings.Contains(neigh(addr), nextMAC)
		})
		t.Logf("client moved %s to the new owner %s after the takeover", addr, time.Since(begin))
	}
}

// TestLateFramesCorrectStaleNeighbour: the previous owner's speaker sees
// a change later than the new owner's and answers requests meanwhile. A
// client that asks then gets two answers and keeps the first; when that is
// the previous owner's, after the new owner's first frames, the client
// holds the wrong MAC for up to a minute. The burst's later frames correct
// it.
func TestLateFramesCorrectStaleNeighbour(t *testing.T) {
	s := newSite(t, 2)
	clk := clocktesting.NewFakeClock(time.Now())
	old, next := start(t, s.speakers[0], Options{GratuitousCount: -1}), start(t, s.speakers[1], Options{Clock: clk})
	oldMAC, nextMAC := mac(t, s.speakers[0], "eth1"), mac(t, s.speakers[1], "eth1")
	arps := startCapture(t, s.client, etherTypeARP)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	neigh := func() string {
		out, _ := s.client.Run(ctx, "ip", "neigh", "show", vip4.String(), "dev", "eth1")
		return out
	}

	set(t, old, on("eth1", vip4)...)
	set(t, next, on("eth1", vip4)...)
	for n := 1; n <= 3; n++ {
		eventually(t, fmt.Sprintf("frame %d", n), func() bool { return arps.count(isGratuitousARP(vip4)) == n })
		if n < 3 {
			eventually(t, "the burst to wait", func() bool { return clk.Waiters() == 1 })
			clk.Step(time.Second)
		}
	}
	// Both answer a request now; which answer the client keeps is chance.
	// Here it keeps the lagging previous owner's.
	if _, err := s.client.Run(ctx, "ip", "neigh", "replace", vip4.String(), "lladdr", oldMAC, "nud", "reachable", "dev", "eth1"); err != nil {
		t.Fatal(err)
	}
	set(t, old)
	clk.Step(10 * time.Second)
	eventually(t, "the client to learn the new owner "+nextMAC, func() bool {
		return strings.Contains(neigh(), nextMAC)
	}, neigh)
}

// TestGarbageIsCountedAndSurvived sends malformed and foreign frames at
// the responders, then checks they are counted and valid requests are
// still answered.
func TestGarbageIsCountedAndSurvived(t *testing.T) {
	s := newSite(t, 1, "arping", "ndisc6")
	sp := s.speakers[0]
	m := NewMetrics(prometheus.NewRegistry())
	a := start(t, sp, Options{Metrics: m, GratuitousCount: -1})
	set(t, a, on("eth1", vip4, vip6)...)
	spMAC := parseMAC(t, mac(t, sp, "eth1"))
	clMAC := parseMAC(t, mac(t, s.client, "eth1"))
	client := netip.MustParseAddr("198.51.100.10")
	client6 := netip.MustParseAddr("2001:db8:100::10")

	req := arpRequest(clMAC, client, vip4)
	send(t, s.client, etherTypeARP, broadcastMAC,
		req[:ethHeaderLen+10],                                            // truncated
		withByte(req, ethHeaderLen+1, 6),                                 // hardware type 6 (IEEE 802)
		withByte(req, ethHeaderLen+4, 8),                                 // hardware address length 8
		withByte(req, ethHeaderLen+7, 2),                                 // a reply
		arpRequest(clMAC, client, netip.MustParseAddr("198.51.100.250")), // not ours
	)
	ns := nsFrame(clMAC, spMAC, client6, vip6, vip6, 255, []byte{1, 1, clMAC[0], clMAC[1], clMAC[2], clMAC[3], clMAC[4], clMAC[5]})
	send(t, s.client, etherTypeIPv6, spMAC,
		nsFrame(clMAC, spMAC, client6, vip6, vip6, 255, []byte{1, 0, 0, 0, 0, 0, 0, 0}), // zero-length option
		withByte(ns, len(ns)-1, ns[len(ns)-1]^0xff),                                     // bad checksum
		truncatedNS(ns, 10), // a 10-byte solicitation
		nsFrame(clMAC, spMAC, client6, vip6, vip6, 64, nil), // hop limit 64
		nsFrame(clMAC, spMAC, client6, netip.MustParseAddr("2001:db8:100::250"), netip.MustParseAddr("2001:db8:100::250"), 255, nil),
	)
	want := map[[2]string]float64{
		{"ipv4", reasonMalformed}: 2, {"ipv4", reasonForeign}: 2, {"ipv4", reasonNotOwned}: 1,
		{"ipv6", reasonMalformed}: 3, {"ipv6", reasonInvalid}: 1, {"ipv6", reasonNotOwned}: 1,
	}
	dropped := func() map[[2]string]float64 {
		got := make(map[[2]string]float64)
		for _, fam := range []string{"ipv4", "ipv6"} {
			for _, r := range reasons {
				if v := value(m.dropped.WithLabelValues(fam, r)); v != 0 {
					got[[2]string{fam, r}] = v
				}
			}
		}
		return got
	}
	deadline := time.Now().Add(15 * time.Second)
	for !maps.Equal(dropped(), want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if diff := cmp.Diff(want, dropped()); diff != "" {
		t.Errorf("dropped_total (-want +got):\n%s", diff)
	}
	if got := value(m.responses.WithLabelValues("ipv4")); got != 0 {
		t.Errorf("responses_sent_total{ipv4} = %v after garbage only", got)
	}

	send(t, s.client, etherTypeIPv6, spMAC, ns) // the valid unicast one
	eventually(t, "the unicast solicitation to be answered", func() bool {
		return value(m.responses.WithLabelValues("ipv6")) == 1
	})
	if got := arping(t, s.client, vip4); !slices.Equal(got, []string{spMAC.String()}) {
		t.Errorf("after garbage, ARP answers from %v, want %s", got, spMAC)
	}
	if got := ndisc6(t, s.client, vip6); !slices.Equal(got, []string{spMAC.String()}) {
		t.Errorf("after garbage, NDP answers from %v, want %s", got, spMAC)
	}
}

// TestInterfaceErrors: an announcement on a missing or down interface is
// reported by name and left out, the others are served, and a later Set
// retries.
func TestInterfaceErrors(t *testing.T) {
	s := newSite(t, 1, "arping")
	sp := s.speakers[0]
	a := start(t, sp, Options{GratuitousCount: -1})
	ctx := context.Background()

	err := a.Set(ctx, append(on("eth1", vip4), on("eth9", vip6)...))
	if !errors.Is(err, ErrInterface) || !strings.Contains(err.Error(), "announce 2001:db8:100::200 on eth9") {
		t.Errorf("Set with a missing interface: error %v, want ErrInterface naming the announcement", err)
	}
	if got, want := a.Owned(), on("eth1", vip4); !slices.Equal(got, want) {
		t.Errorf("Owned = %v, want %v", got, want)
	}
	if got := arping(t, s.client, vip4); len(got) != 1 {
		t.Errorf("the valid announcement is not answered: %v", got)
	}

	if err := sp.SetLink("eth1", false); err != nil {
		t.Fatal(err)
	}
	err = a.Set(ctx, on("eth1", vip4, vip6))
	if !errors.Is(err, ErrInterface) || !strings.Contains(err.Error(), "announce 2001:db8:100::200 on eth1") {
		t.Errorf("Set on a down interface: error %v, want ErrInterface naming the announcement", err)
	}
	if err := sp.SetLink("eth1", true); err != nil {
		t.Fatal(err)
	}
	// The IPv4 responder outlived the link flap by reopening; the later
	// Set picks up the IPv6 address.
	set(t, a, on("eth1", vip4, vip6)...)
	if got, want := a.Owned(), on("eth1", vip4, vip6); !slices.Equal(got, want) {
		t.Errorf("Owned = %v, want %v", got, want)
	}
	eventually(t, "ARP answers after the link came back", func() bool { return len(arping(t, s.client, vip4)) == 1 })
}

// TestYieldToNewOwner: a node that yields (it is leaving) stops answering
// for an address as soon as another host announces it, ARP and NDP alike;
// one that does not yield keeps answering (a newcomer's claim alone does
// not take an address away).
func TestYieldToNewOwner(t *testing.T) {
	s := newSite(t, 3)
	keeper, leaver := start(t, s.speakers[0], Options{}), start(t, s.speakers[1], Options{})
	next := start(t, s.speakers[2], Options{})
	set(t, keeper, on("eth1", vip4, vip6)...)
	set(t, leaver, on("eth1", vip4, vip6)...)
	leaver.Yield()
	set(t, next, on("eth1", vip4, vip6)...) // its gratuitous burst
	eventually(t, "the yielding node to give both addresses up", func() bool { return len(leaver.Owned()) == 0 })
	if diff := cmp.Diff(on("eth1", vip4, vip6), keeper.Owned(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("the node that does not yield (-want +got):\n%s", diff)
	}
}
