package lab_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// The test binary doubles as the programs the tests run inside hosts.
func TestMain(m *testing.M) {
	switch os.Getenv("PIER_LAB_TEST_ROLE") {
	case "echo":
		err := echo.Serve(context.Background(), echo.Options{TCP: os.Getenv("ECHO_TCP"), UDP: os.Getenv("ECHO_UDP")}, os.Stdout)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case "hold-lab":
		holdLab()
	}
	os.Exit(m.Run())
}

// holdLab builds a site, prints its prefix and waits to be interrupted.
func holdLab() {
	l, err := lab.New(lab.Options{})
	if err == nil {
		_, err = l.BuildSite(lab.SiteOptions{Nodes: 1})
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("prefix:", l.Prefix)
	select {}
}

func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "ip")
	l, err := lab.New(lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		assertGone(t, l.Prefix)
	})
	return l
}

func startEcho(t *testing.T, h *lab.Host, port int) {
	t.Helper()
	p, err := h.Start("env", "PIER_LAB_TEST_ROLE=echo",
		fmt.Sprintf("ECHO_TCP=:%d", port), fmt.Sprintf("ECHO_UDP=:%d", port), os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, echo.Ready); err != nil {
		t.Fatal(err)
	}
}

func TestEchoAcrossSite(t *testing.T) {
	l := newLab(t)
	site, err := l.BuildSite(lab.SiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startEcho(t, site.Nodes[0], 7007)
	v4, v6 := lab.NodeAddrs(1)
	cases := []struct {
		from    *lab.Host
		network string
		addr    netip.Addr
	}{
		{site.Client, "tcp", v4.Addr()}, // through the router
		{site.Client, "udp", v4.Addr()},
		{site.Client, "tcp", v6.Addr()},
		{site.Client, "udp", v6.Addr()},
		{site.Nodes[1], "tcp", v4.Addr()}, // across the L2 segment
		{site.Nodes[2], "udp", v6.Addr()},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.from.Name, tc.network, tc.addr), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := echo.RoundTrip(ctx, tc.from.Dial, tc.network, netip.AddrPortFrom(tc.addr, 7007).String()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLinkDownUp(t *testing.T) {
	l := newLab(t)
	site, err := l.BuildSite(lab.SiteOptions{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	startEcho(t, site.Nodes[0], 7007)
	v4, _ := lab.NodeAddrs(1)
	target := netip.AddrPortFrom(v4.Addr(), 7007).String()
	try := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return echo.RoundTrip(ctx, site.Nodes[1].Dial, "tcp", target)
	}
	if err := try(5 * time.Second); err != nil {
		t.Fatalf("before link down: %v", err)
	}
	if err := site.Nodes[0].SetLink("eth1", false); err != nil {
		t.Fatal(err)
	}
	if err := try(500 * time.Millisecond); err == nil {
		t.Fatal("reached node1 with its link down")
	}
	if err := site.Nodes[0].SetLink("eth1", true); err != nil {
		t.Fatal(err)
	}
	if err := try(5 * time.Second); err != nil {
		t.Fatalf("after link up: %v", err)
	}
}

func TestManagementReachesRoot(t *testing.T) {
	l := newLab(t)
	site, err := l.BuildSite(lab.SiteOptions{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("control plane"))
			c.Close()
		}
	}()
	published, err := l.PublishToManagement(6443, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := site.Nodes[0].Dial(context.Background(), "tcp", published.String())
	if err != nil {
		t.Fatalf("node1 -> %s: %v", published, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 13)
	if _, err := c.Read(buf); err != nil || string(buf) != "control plane" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if !site.NodeMgmt[0].IsValid() || !netip.MustParsePrefix("192.0.2.0/24").Contains(site.NodeMgmt[0]) {
		t.Fatalf("node management address %v outside 192.0.2.0/24", site.NodeMgmt[0])
	}
}

func TestNoRouteOutOfLab(t *testing.T) {
	l := newLab(t)
	site, err := l.BuildSite(lab.SiteOptions{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := site.Client
	if err := h.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("198.18.0.1")); !errors.Is(err, lab.ErrOutsideLab) {
		t.Errorf("default route: err = %v, want ErrOutsideLab", err)
	}
	if err := h.AddRoute(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("198.18.0.1")); !errors.Is(err, lab.ErrOutsideLab) {
		t.Errorf("route to 10/8: err = %v, want ErrOutsideLab", err)
	}
	if err := h.AddAddr("eth0", netip.MustParsePrefix("192.168.1.1/24")); !errors.Is(err, lab.ErrOutsideLab) {
		t.Errorf("address 192.168.1.1: err = %v, want ErrOutsideLab", err)
	}
	for _, host := range append([]*lab.Host{site.Router, site.Client}, site.Nodes...) {
		for _, fam := range []string{"-4", "-6"} {
			out, err := host.Run(context.Background(), "ip", fam, "route", "show", "default")
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(out) != "" {
				t.Errorf("%s has a default route: %s", host.Name, out)
			}
		}
	}
}

func TestCleanRemovesLeftoversOnly(t *testing.T) {
	prereq.Root(t)
	live := newLab(t)
	if _, err := live.AddHost("alive"); err != nil {
		t.Fatal(err)
	}
	// A lab whose owner died without closing it.
	dead := startHolder(t)
	prefix := holderPrefix(t, dead)
	if err := dead.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	dead.Wait()

	removed, err := lab.Clean(false)
	if err != nil {
		t.Fatal(err)
	}
	if !containsPrefix(removed, prefix) {
		t.Errorf("Clean removed %v, want the dead lab %s", removed, prefix)
	}
	if containsPrefix(removed, live.Prefix) {
		t.Errorf("Clean removed the live lab %s: %v", live.Prefix, removed)
	}
	assertGone(t, prefix)
}

func TestInterruptRemovesLab(t *testing.T) {
	prereq.Root(t)
	cmd := startHolder(t)
	prefix := holderPrefix(t, cmd)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Errorf("holder exit: %v, want status 130", err)
	}
	assertGone(t, prefix)
}

func startHolder(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIER_LAB_TEST_ROLE=hold-lab")
	cmd.Stdout = &lockedBuilder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); lab.Clean(false) })
	return cmd
}

func holderPrefix(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out := cmd.Stdout.(*lockedBuilder)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s := out.String()
		if i := strings.Index(s, "prefix: "); i >= 0 && strings.Contains(s[i:], "\n") {
			return strings.TrimSpace(strings.SplitN(s[i+len("prefix: "):], "\n", 2)[0])
		}
		if strings.Contains(s, "error:") {
			t.Fatal(s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("holder printed no prefix: %q", out.String())
	return ""
}

func containsPrefix(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// assertGone checks that no namespace or root-namespace link carries prefix.
func assertGone(t *testing.T, prefix string) {
	t.Helper()
	for _, args := range [][]string{{"netns", "list"}, {"-o", "link", "show"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		if strings.Contains(string(out), prefix) {
			t.Errorf("ip %v still shows %s:\n%s", args, prefix, out)
		}
	}
}

// TestLargestSite: a site of MaxSiteNodes nodes builds and its last node
// is reached from the first across the segment (IPv4 and IPv6) and from the
// client through the router; one node more is refused.
func TestLargestSite(t *testing.T) {
	l := newLab(t)
	if _, err := l.BuildSite(lab.SiteOptions{Nodes: lab.MaxSiteNodes + 1}); err == nil {
		t.Fatalf("a site of %d nodes was built", lab.MaxSiteNodes+1)
	}
	site, err := l.BuildSite(lab.SiteOptions{Nodes: lab.MaxSiteNodes})
	if err != nil {
		t.Fatal(err)
	}
	last := len(site.Nodes) - 1
	startEcho(t, site.Nodes[last], 7007)
	v4, v6 := lab.NodeAddrs(last + 1)
	for _, tc := range []struct {
		from *lab.Host
		addr netip.Addr
	}{{site.Client, v4.Addr()}, {site.Nodes[0], v4.Addr()}, {site.Nodes[0], v6.Addr()}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := echo.RoundTrip(ctx, tc.from.Dial, "udp", netip.AddrPortFrom(tc.addr, 7007).String())
		cancel()
		if err != nil {
			t.Errorf("%s -> %s: %v", tc.from.Name, tc.addr, err)
		}
	}
	if pool := netip.MustParseAddr("198.51.100.200"); v4.Addr().Compare(pool) >= 0 {
		t.Errorf("last node %s is inside the LoadBalancer pool from %s", v4.Addr(), pool)
	}
	if !site.NodeMgmt[last].IsValid() || !lab.MgmtSubnet.Contains(site.NodeMgmt[last]) {
		t.Errorf("last node's management address %v outside %s", site.NodeMgmt[last], lab.MgmtSubnet)
	}
}
