package vip_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
	"github.com/pier-lb/pier/speaker/vip"
)

var (
	vip4   = netip.MustParseAddr("198.51.100.200")
	vip6   = netip.MustParseAddr("2001:db8:100::200")
	admin4 = netip.MustParsePrefix("198.51.100.250/32")
	node4  = netip.MustParsePrefix("198.51.100.10/24")
	node6  = netip.MustParsePrefix("2001:db8:100::10/64")
	peer4  = netip.MustParsePrefix("198.51.100.20/24")
	peer6  = netip.MustParsePrefix("2001:db8:100::20/64")
)

// newLab returns an empty lab removed when the test ends.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	l := lab.ForTest(t)
	return l
}

func addHost(t *testing.T, l *lab.Lab, name string) *lab.Host {
	t.Helper()
	h, err := l.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// handleIn opens a netlink handle in h's namespace.
func handleIn(t *testing.T, h *lab.Host) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return nl
}

// newVIPs manages lo in h's namespace.
func newVIPs(t *testing.T, h *lab.Host, nl *netlink.Handle, state string) *vip.VIPs {
	t.Helper()
	v, err := vip.New(vip.Options{Netlink: nl, Sysctl: h.Sysctl, StateFile: state, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func set(t *testing.T, v *vip.VIPs, addrs ...netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Set(ctx, addrs); err != nil {
		t.Fatalf("Set(%v): %v", addrs, err)
	}
}

// loAddrs lists lo's addresses, with the IPv4 label, as netlink reports them.
func loAddrs(t *testing.T, nl *netlink.Handle) []string {
	t.Helper()
	link, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	list, err := nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range list {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// ipAddrShow is `ip -o addr show dev lo` in h, one "addr label" per line.
func ipAddrShow(t *testing.T, h *lab.Host) []string {
	t.Helper()
	out, err := h.Run(context.Background(), "ip", "-o", "addr", "show", "dev", "lo")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		// "1: lo inet 198.51.100.200/32 scope global lo:pier\  valid_lft ..."
		entry := f[3]
		if f[2] == "inet" {
			if i := slices.IndexFunc(f, func(s string) bool { return strings.HasSuffix(s, `\`) }); i > 0 {
				entry += " " + strings.TrimSuffix(f[i], `\`)
			}
		}
		lines = append(lines, entry)
	}
	slices.Sort(lines)
	return lines
}

func sorted(ss ...string) []string {
	slices.Sort(ss)
	return ss
}

func TestSetOnLoopback(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	nl := handleIn(t, h)
	v := newVIPs(t, h, nl, filepath.Join(t.TempDir(), "vips.json"))
	if err := h.AddAddr("lo", admin4); err != nil { // an administrator's address
		t.Fatal(err)
	}
	base := []string{"127.0.0.1/8 lo", "198.51.100.250/32 lo", "::1/128"}

	set(t, v, vip4, vip6)
	want := sorted(append(slices.Clone(base), "198.51.100.200/32 lo:pier", "2001:db8:100::200/128")...)
	if diff := cmp.Diff(want, loAddrs(t, nl)); diff != "" {
		t.Fatalf("netlink after Set (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, ipAddrShow(t, h)); diff != "" {
		t.Fatalf("ip addr after Set (-want +got):\n%s", diff)
	}
	if got := v.Current(); !slices.Equal(got, []netip.Addr{vip4, vip6}) {
		t.Fatalf("Current = %v, want [%s %s]", got, vip4, vip6)
	}

	t.Run("repeat changes nothing", func(t *testing.T) {
		set(t, v, vip6, vip4, vip4)
		if diff := cmp.Diff(want, loAddrs(t, nl)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("one removed", func(t *testing.T) {
		set(t, v, vip6)
		want := sorted(append(slices.Clone(base), "2001:db8:100::200/128")...)
		if diff := cmp.Diff(want, loAddrs(t, nl)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		if got := v.Current(); !slices.Equal(got, []netip.Addr{vip6}) {
			t.Fatalf("Current = %v, want [%s]", got, vip6)
		}
	})
	t.Run("wanted admin address is not taken over", func(t *testing.T) {
		set(t, v, admin4.Addr())
		if got := v.Current(); len(got) != 0 {
			t.Fatalf("Current = %v, want none", got)
		}
	})
	t.Run("nil removes only ours", func(t *testing.T) {
		set(t, v)
		if diff := cmp.Diff(base, loAddrs(t, nl)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(base, ipAddrShow(t, h)); diff != "" {
			t.Fatalf("ip addr (-want +got):\n%s", diff)
		}
	})
}

func TestSetKeepsStateFileWhenUnchanged(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	nl := handleIn(t, h)
	state := filepath.Join(t.TempDir(), "vips.json")
	v := newVIPs(t, h, nl, state)
	set(t, v, vip4, vip6)
	before, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	set(t, v, vip4, vip6)
	after, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("state file replaced by a Set that changed nothing")
	}
	b, _ := os.ReadFile(state)
	if got, want := strings.TrimSpace(string(b)), `["198.51.100.200","2001:db8:100::200"]`; got != want {
		t.Errorf("state file %s, want %s", got, want)
	}
}

func TestRestartRemovesStale(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	nl := handleIn(t, h)
	state := filepath.Join(t.TempDir(), "vips.json")
	base := []string{"127.0.0.1/8 lo", "::1/128"}

	set(t, newVIPs(t, h, nl, state), vip4, vip6) // the speaker before a restart

	v := newVIPs(t, h, nl, state)
	set(t, v, vip6)
	want := sorted(append(slices.Clone(base), "2001:db8:100::200/128")...)
	if diff := cmp.Diff(want, loAddrs(t, nl)); diff != "" {
		t.Fatalf("after restart (-want +got):\n%s", diff)
	}
	if got := v.Current(); !slices.Equal(got, []netip.Addr{vip6}) {
		t.Fatalf("Current = %v, want [%s]", got, vip6)
	}

	t.Run("recorded address replaced by hand is left alone", func(t *testing.T) {
		set(t, v, vip4, vip6)
		ctx := context.Background()
		if _, err := h.Run(ctx, "ip", "addr", "del", "198.51.100.200/32", "dev", "lo"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Run(ctx, "ip", "addr", "add", "198.51.100.200/32", "dev", "lo"); err != nil {
			t.Fatal(err)
		}
		set(t, newVIPs(t, h, nl, state))
		want := sorted(append(slices.Clone(base), "198.51.100.200/32 lo")...)
		if diff := cmp.Diff(want, loAddrs(t, nl)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
}

func TestWithoutStateFileNothingStaleIsRemoved(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	nl := handleIn(t, h)
	set(t, newVIPs(t, h, nl, ""), vip4)
	set(t, newVIPs(t, h, nl, ""))
	if got := loAddrs(t, nl); !slices.Contains(got, "198.51.100.200/32 lo:pier") {
		t.Fatalf("an address unknown to the new VIPs was removed: %v", got)
	}
}

func TestSetErrorsPerAddress(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	nl := handleIn(t, h)
	v := newVIPs(t, h, nl, "")
	bad := netip.MustParseAddr("127.0.0.5")
	err := v.Set(context.Background(), []netip.Addr{bad, vip4})
	if err == nil || !strings.Contains(err.Error(), "add 127.0.0.5 on lo") {
		t.Fatalf("Set error %v, want one naming 127.0.0.5 and lo", err)
	}
	if got := v.Current(); !slices.Equal(got, []netip.Addr{vip4}) {
		t.Fatalf("Current = %v: the good address was not added", got)
	}

	missing, err := vip.New(vip.Options{Link: "nosuch0", Netlink: nl})
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Set(context.Background(), []netip.Addr{vip4}); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("Set on a missing link: %v", err)
	}
}

func readSysctl(t *testing.T, h *lab.Host, key string) string {
	t.Helper()
	var b []byte
	err := h.Do(func() (err error) {
		b, err = os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestPrepare(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	v := newVIPs(t, h, handleIn(t, h), "")
	rootBefore, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
	for range 2 { // idempotent
		if err := v.Prepare(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"net.ipv4.conf.all.arp_ignore":       "1",
		"net.ipv4.conf.default.arp_ignore":   "1",
		"net.ipv4.conf.all.arp_announce":     "2",
		"net.ipv4.conf.default.arp_announce": "2",
	}
	got := map[string]string{}
	for k := range want {
		got[k] = readSysctl(t, h, k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sysctls in the namespace (-want +got):\n%s", diff)
	}
	if rootAfter, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore"); !bytes.Equal(rootBefore, rootAfter) {
		t.Errorf("the test's own namespace changed: arp_ignore %q -> %q", rootBefore, rootAfter)
	}
}

// segment is a node and a peer on one L2 switch.
type segment struct {
	node, peer *lab.Host
	nl         *netlink.Handle
	v          *vip.VIPs
}

func newSegment(t *testing.T) segment {
	t.Helper()
	l := newLab(t)
	sw, err := l.AddSwitch("sw")
	if err != nil {
		t.Fatal(err)
	}
	s := segment{node: addHost(t, l, "node"), peer: addHost(t, l, "peer")}
	if err := sw.Connect(s.node, "eth1", node4, node6); err != nil {
		t.Fatal(err)
	}
	if err := sw.Connect(s.peer, "eth1", peer4, peer6); err != nil {
		t.Fatal(err)
	}
	s.nl = handleIn(t, s.node)
	s.v = newVIPs(t, s.node, s.nl, "")
	return s
}

// pointAtNode does for the peer what the elected speaker's ARP or NDP
// answer would: the VIP's neighbour entry names the node's MAC.
func (s segment) pointAtNode(t *testing.T, a netip.Addr) {
	t.Helper()
	link, err := s.nl.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	mac := link.Attrs().HardwareAddr.String()
	if _, err := s.peer.Run(context.Background(), "ip", "neigh", "replace", a.String(), "lladdr", mac, "dev", "eth1", "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
}

// serveEcho accepts on ln and echoes until ln is closed.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func roundTrip(t *testing.T, from *lab.Host, addr netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from.Name, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := fmt.Sprintf("hello %s from %s", addr, from.Name)
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo from %s: %q, %v", addr, buf, err)
	}
}

func TestServeOnVIP(t *testing.T) {
	s := newSegment(t)
	if err := s.v.Prepare(); err != nil {
		t.Fatal(err)
	}
	set(t, s.v, vip4, vip6)
	for _, a := range []netip.Addr{vip4, vip6} {
		t.Run(a.String(), func(t *testing.T) {
			ap := netip.AddrPortFrom(a, 8443)
			ln, err := s.node.Listen("tcp", ap.String())
			if err != nil {
				t.Fatalf("listen on the VIP: %v", err)
			}
			defer ln.Close()
			go serveEcho(ln)
			roundTrip(t, s.node, ap)
			s.pointAtNode(t, a)
			roundTrip(t, s.peer, ap)
		})
	}
}

// answers reports whether a gets an ARP (IPv4) or NDP (IPv6) answer on the
// peer's eth1. A positive answer returns as soon as it arrives; a negative
// one waits out a few retries.
func answers(t *testing.T, peer *lab.Host, a netip.Addr) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	if a.Is4() {
		_, err = peer.Run(ctx, "arping", "-q", "-i", "eth1", "-C", "1", "-c", "3", a.String())
	} else {
		_, err = peer.Run(ctx, "ndisc6", "-q", "-1", "-r", "3", a.String(), "eth1")
	}
	return err == nil
}

func TestOnlyTheSpeakerAnswersARP(t *testing.T) {
	prereq.Tools(t, "arping", "ndisc6")
	s := newSegment(t)
	set(t, s.v, vip4, vip6)
	// Linux's weak host model: without the sysctls the node answers ARP for
	// a VIP held on lo, and would fight the elected speaker.
	if !answers(t, s.peer, vip4) {
		t.Fatal("no ARP answer for the VIP before Prepare: the test cannot see answers")
	}
	if err := s.v.Prepare(); err != nil {
		t.Fatal(err)
	}
	if answers(t, s.peer, vip4) {
		t.Error("the node answers ARP for a VIP on lo after Prepare")
	}
	if !answers(t, s.peer, node4.Addr()) {
		t.Error("the node no longer answers ARP for its own eth1 address")
	}
	if answers(t, s.peer, vip6) {
		t.Error("the node answers NDP for a VIP on lo")
	}
	if !answers(t, s.peer, node6.Addr()) {
		t.Error("the node does not answer NDP for its own eth1 address")
	}
}

// The defaults (netlink and /proc/sys of the calling thread's namespace)
// act on the namespace VIPs runs in.
func TestDefaultsActOnCurrentNamespace(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	err := h.Do(func() error {
		v, err := vip.New(vip.Options{})
		if err != nil {
			return err
		}
		if err := v.Prepare(); err != nil {
			return err
		}
		return v.Set(context.Background(), []netip.Addr{vip4, vip6})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1/8 lo", "198.51.100.200/32 lo:pier", "2001:db8:100::200/128", "::1/128"}
	if diff := cmp.Diff(want, loAddrs(t, handleIn(t, h))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := readSysctl(t, h, "net.ipv4.conf.all.arp_ignore"); got != "1" {
		t.Errorf("arp_ignore %s, want 1", got)
	}
}
