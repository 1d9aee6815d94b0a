package speaker

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pier-lb/pier/e2e/prereq"
)

// inNewNetns runs fn on a locked thread inside a new, empty network
// namespace, which goes away with the thread's return to its own.
func inNewNetns(tb testing.TB, fn func()) {
	tb.Helper()
	prereq.Root(tb)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // the thread would stay in the test's namespace
		}
	}()
	fn()
}

// addVeth adds a veth pair name/name-peer, up (both ends, so the link
// runs) unless down, with addrs on name.
func addVeth(tb testing.TB, name string, down bool, addrs ...string) {
	tb.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "-p"}
	if err := netlink.LinkAdd(v); err != nil {
		tb.Fatalf("add %s: %v", name, err)
	}
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			tb.Fatal(err)
		}
		addr.Flags |= 0x02 // IFA_F_NODAD: no duplicate detection to wait for
		if err := netlink.AddrAdd(v, addr); err != nil {
			tb.Fatalf("address %s on %s: %v", a, name, err)
		}
	}
	if down {
		return
	}
	for _, n := range []string{name, name + "-p"} {
		l, err := netlink.LinkByName(n)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			tb.Fatalf("up %s: %v", n, err)
		}
	}
	waitRunning(tb, name)
}

// waitRunning waits until the kernel marks link name running: it sets
// IFF_RUNNING some time after both ends of a veth are up (a delayed work
// item, slow on a loaded machine), and LocalIfaces skips links without it.
func waitRunning(tb testing.TB, name string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := netlink.LinkByName(name)
		if err != nil {
			tb.Fatal(err)
		}
		if l.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not running 10 s after it was set up", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLocalIfaces(t *testing.T) {
	inNewNetns(t, func() {
		addVeth(t, "seg0", false, "198.51.100.11/24", "2001:db8:1::11/64", "fe80::11/64")
		addVeth(t, "seg1", false, "203.0.113.7/25")
		addVeth(t, "off0", true, "192.0.2.9/24")
		addVeth(t, "bare0", false)
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := LocalIfaces()
		if err != nil {
			t.Fatal(err)
		}
		want := []Iface{
			{Name: "seg0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}},
			{Name: "seg1", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}},
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("LocalIfaces (-want +got):\n%s", diff)
		}
	})
}

// BenchmarkLocalIfaces lists the interfaces of a node with 100 pod veths
// (each with an address), which every speaker pass does. As root.
func BenchmarkLocalIfaces(b *testing.B) {
	inNewNetns(b, func() {
		addVeth(b, "seg0", false, "198.51.100.11/24")
		for i := range 100 {
			ip := net.IPv4(198, 19, byte(i/64), byte(i%64*4+1))
			addVeth(b, fmt.Sprintf("veth%d", i), false, ip.String()+"/30")
		}
		b.ResetTimer()
		for b.Loop() {
			if _, err := LocalIfaces(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
