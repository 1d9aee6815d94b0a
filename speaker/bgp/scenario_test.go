package bgp_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/speaker/bgp"
)

var vip6 = netip.MustParsePrefix("2001:db8:113::10/128")

// manyPaths returns n /32s from the benchmark range 198.19.0.0/16.
func manyPaths(n int) []bgp.Path {
	out := make([]bgp.Path, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		out = append(out, bgp.Path{Prefix: netip.PrefixFrom(a, 32), Peers: []string{"frr"}})
	}
	return out
}

// One lab, several checks in order: starting FRR, BIRD and three announcers
// costs seconds, so the scenario shares them.
func TestAgainstFRRAndBIRD(t *testing.T) {
	b := newBGPLab(t, 3)
	lp := uint32(300)
	vipPath := bgp.Path{Prefix: vip, LocalPref: &lp, Communities: []uint32{nodeASN<<16 | 100},
		LargeCommunities: [][3]uint32{{nodeASN, 1, 2}}}
	birdOnly := bgp.Path{Prefix: netip.MustParsePrefix("203.0.113.20/32"), Peers: []string{"bird"}}
	vip6Path := bgp.Path{Prefix: vip6}
	base1 := []bgp.Path{vipPath, birdOnly, vip6Path}
	b.configure(1, peersFor(""), base1)
	b.configure(2, peersFor(""), []bgp.Path{vipPath, vip6Path})
	b.configure(3, peersFor("wrong-pw"), nil)
	b.waitFRREstablished(nodeAddr(1), nodeAddr(2), nodeAddr6(1), nodeAddr6(2))
	b.waitBIRDEstablished(1, 2)

	t.Run("ECMP and attributes in FRR", func(t *testing.T) {
		b.poll("both next hops in FRR", 10*time.Second, func() error {
			r, err := b.frrRoute(vip)
			if err != nil {
				return err
			}
			nh := r.nextHops()
			if !slices.Contains(nh, "198.51.100.11") || !slices.Contains(nh, "198.51.100.12") {
				return fmt.Errorf("next hops %v", nh)
			}
			for _, p := range r.Paths {
				if !p.Multipath || p.Community == nil || p.Community.String != "64513:100" ||
					p.LargeCommunity == nil || p.LargeCommunity.String != "64513:1:2" {
					return fmt.Errorf("path %+v: want multipath, community 64513:100, large 64513:1:2", p)
				}
			}
			return nil
		})
	})
	t.Run("ECMP, local preference and communities in BIRD", func(t *testing.T) {
		b.poll("route in BIRD", 10*time.Second, func() error {
			out, err := b.birdc("show", "route", vip.String(), "all")
			if err != nil {
				return err
			}
			for _, s := range []string{"via 198.51.100.11", "via 198.51.100.12", "BGP.local_pref: 300", "(64513,100)", "(64513, 1, 2)"} {
				if !strings.Contains(out, s) {
					return fmt.Errorf("no %q in:\n%s", s, out)
				}
			}
			return nil
		})
	})
	t.Run("IPv6 over IPv6 sessions", func(t *testing.T) {
		b.poll("both IPv6 next hops in FRR", 10*time.Second, func() error {
			r, err := b.frrRoute(vip6)
			if err != nil {
				return err
			}
			if nh := r.nextHops(); !slices.Contains(nh, nodeAddr6(1).String()) || !slices.Contains(nh, nodeAddr6(2).String()) {
				return fmt.Errorf("next hops %v", nh)
			}
			return nil
		})
	})
	t.Run("per-peer paths", func(t *testing.T) {
		b.poll("bird-only path in BIRD", 10*time.Second, func() error {
			out, err := b.birdc("show", "route", birdOnly.Prefix.String())
			if err != nil || !strings.Contains(out, "via 198.51.100.11") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if n, err := b.frrPrefixesFrom(1); err != nil || n != 1 {
			t.Errorf("FRR has %d prefixes from node1 (%v), want 1: the bird-only path leaked", n, err)
		}
	})
	t.Run("TCP MD5", func(t *testing.T) { testMD5(t, b) })
	t.Run("path churn resets no session", func(t *testing.T) { testChurn(t, b, base1) })
	t.Run("status", func(t *testing.T) { testStatus(t, b) })
	t.Run("peer change resets only that peer", func(t *testing.T) { testPeerChange(t, b, base1) })
	t.Run("1000 paths and withdrawal on SIGTERM", func(t *testing.T) { testScale(t, b, vipPath) })
}

func testMD5(t *testing.T, b *bgpLab) {
	p := b.procs[3]
	b.poll("warning about the unestablished MD5 session", 20*time.Second, func() error {
		if !strings.Contains(p.Output(), "TCP MD5 password is set") {
			return fmt.Errorf("no warning yet; output:\n%s", p.Output())
		}
		return nil
	})
	n, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if s := n[nodeAddr(3).String()]; s.BGPState == "Established" || s.ConnectionsEstablished != 0 {
		t.Fatalf("node3 with a wrong password: %+v, want never established", s)
	}
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, "TCP MD5") {
			t.Logf("announcer says: %s", line)
			break
		}
	}
	b.configure(3, peersFor(md5Right), nil)
	b.waitFRREstablished(nodeAddr(3))
	b.waitBIRDEstablished(3)
	if out := p.Output(); strings.Contains(out, "wrong-pw") || strings.Contains(out, md5Right) {
		t.Errorf("a password was logged:\n%s", out)
	}
}

func testChurn(t *testing.T, b *bgpLab, base []bgp.Path) {
	before, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	birdBefore, err := b.birdc("show", "protocols", "node1")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		b.configure(1, peersFor(""), append(slices.Clone(base), manyPaths(50)...))
		b.waitPrefixesFrom(1, 51)
		b.configure(1, peersFor(""), base)
		b.waitPrefixesFrom(1, 1)
		// The bird-only path goes to FRR too, then back to BIRD only.
		repeered := slices.Clone(base)
		repeered[1].Peers = []string{"bird", "frr"}
		b.configure(1, peersFor(""), repeered)
		b.waitPrefixesFrom(1, 2)
		b.configure(1, peersFor(""), base)
		b.waitPrefixesFrom(1, 1)
		t.Logf("round %d: 50 prefixes added and removed, one path re-peered and back", round)
	}
	after, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		a := nodeAddr(i).String()
		if before[a] != after[a] || after[a].BGPState != "Established" {
			t.Errorf("node%d session changed: before %+v, after %+v", i, before[a], after[a])
		}
	}
	birdAfter, err := b.birdc("show", "protocols", "node1")
	if err != nil {
		t.Fatal(err)
	}
	if !lab.SameBirdSessions(birdBefore, birdAfter) {
		t.Errorf("BIRD session changed:\n%s\n%s", birdBefore, birdAfter)
	}
}

func (b *bgpLab) waitPrefixesFrom(i, want int) {
	b.t.Helper()
	b.poll(fmt.Sprintf("%d prefixes from node%d in FRR", want, i), 30*time.Second, func() error {
		n, err := b.frrPrefixesFrom(i)
		if err == nil && n != want {
			err = fmt.Errorf("%d prefixes", n)
		}
		return err
	})
}

func testScale(t *testing.T, b *bgpLab, vipPath bgp.Path) {
	paths := append([]bgp.Path{vipPath}, manyPaths(1000)...)
	start := time.Now()
	b.configure(2, peersFor(""), paths)
	b.waitPrefixesFrom(2, 1001)
	t.Logf("FIGURE: 1000 /32 paths: SIGHUP -> all in FRR's BGP table in %s", time.Since(start).Round(time.Millisecond))

	if _, err := b.vtysh("debug bgp updates in " + nodeAddr(2).String()); err != nil {
		t.Fatal(err)
	}
	p := b.procs[2]
	start = time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b.poll("node2's routes gone from FRR", 10*time.Second, func() error {
		n, err := b.frrPrefixesFrom(2)
		if err != nil || n != 0 {
			return fmt.Errorf("%d prefixes from node2 (%v)", n, err)
		}
		r, err := b.frrRoute(vip)
		if err != nil {
			return err
		}
		if nh := r.nextHops(); !slices.Equal(nh, []string{"198.51.100.11"}) {
			return fmt.Errorf("next hops %v", nh)
		}
		return nil
	})
	t.Logf("FIGURE: SIGTERM -> node2's 1001 routes gone from FRR in %s", time.Since(start).Round(time.Millisecond))
	// The announcer withdraws, then sends a Cease behind the withdrawals on
	// the same queue (its log shows the order). FRR processes part of the
	// withdrawals before it handles the closed connection (600 to all 1001
	// seen here) and drops the rest with the session: either way they are
	// gone. What must hold is that withdrawals arrive at all.
	b.poll("FRR logs withdrawals from node2", 5*time.Second, func() error {
		if n := b.frrWithdrawalsFrom(nodeAddr(2)); n == 0 {
			return fmt.Errorf("no withdrawal logged")
		}
		return nil
	})
	t.Logf("FIGURE: FRR processed %d of 1001 withdrawals before the session closed", b.frrWithdrawalsFrom(nodeAddr(2)))
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("announcer did not exit after SIGTERM")
	}
	if out := p.Output(); !strings.Contains(out, "withdrawn=1001") || !strings.Contains(out, "announcer stopped") {
		t.Errorf("no clean stop with withdrawal in output:\n%.3000s", out)
	}
}

func testStatus(t *testing.T, b *bgpLab) {
	p := b.procs[1]
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var st []bgp.PeerStatus
	b.poll("status from node1", 10*time.Second, func() error {
		_, after, ok := strings.Cut(p.Output(), "status: ")
		if !ok {
			return fmt.Errorf("no status yet")
		}
		line, _, _ := strings.Cut(after, "\n")
		return json.Unmarshal([]byte(line), &st)
	})
	sent := map[string]uint64{"bird": 2, "frr": 1, "frr6": 1}
	for _, s := range st {
		if s.State != "Established" || s.Uptime <= 0 || s.PrefixesSent != sent[s.Name] {
			t.Errorf("status %+v: want Established, uptime > 0, %d prefixes sent", s, sent[s.Name])
		}
	}
	if len(st) != 3 {
		t.Errorf("status of %d peers, want 3: %+v", len(st), st)
	}
}

func testPeerChange(t *testing.T, b *bgpLab, base []bgp.Path) {
	before, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	peers := peersFor("")
	peers[1].HoldTime = 12 * time.Second // bird
	b.configure(1, peers, base)
	b.poll("BIRD session back with the new hold time", 20*time.Second, func() error {
		out, err := b.birdc("show", "protocols", "all", "node1")
		if err == nil && !(strings.Contains(out, "Established") && strings.Contains(out, "/12")) {
			err = fmt.Errorf("not yet:\n%s", out)
		}
		return err
	})
	after, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{nodeAddr(1), nodeAddr6(1)} {
		if before[a.String()] != after[a.String()] {
			t.Errorf("FRR session %s changed with BIRD's settings: %+v -> %+v", a, before[a.String()], after[a.String()])
		}
	}
}

// frrWithdrawalsFrom counts the withdrawals FRR logged from a neighbor
// (after `debug bgp updates in`).
func (b *bgpLab) frrWithdrawalsFrom(a netip.Addr) int {
	n := 0
	for _, line := range strings.Split(b.frr.Output(), "\n") {
		if strings.Contains(line, a.String()) && strings.HasSuffix(line, "-- withdrawn") {
			n++
		}
	}
	return n
}
