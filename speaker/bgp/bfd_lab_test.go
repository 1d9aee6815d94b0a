package bgp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
	"github.com/pier-lb/pier/speaker/bgp"
)

// newBFDLab is a site whose router runs FRR's zebra, bfdd and bgpd: every
// node is a passive BGP neighbor over IPv4 and IPv6 with `bfd` (profile
// pier: 300 ms x 3) unless bfd is false.
func newBFDLab(t testing.TB, nodes int, bfd bool) *bgpLab {
	t.Helper()
	b := newFRRLab(t, func(l *lab.Lab) (*lab.Site, error) { return l.BuildSite(lab.SiteOptions{Nodes: nodes}) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "router bgp %d\n bgp router-id 198.51.100.1\n no bgp ebgp-requires-policy\n", routerASN)
	for i := 1; i <= nodes; i++ {
		for _, a := range []netip.Addr{nodeAddr(i), nodeAddr6(i)} {
			fmt.Fprintf(&sb, " neighbor %s remote-as %d\n neighbor %s passive\n", a, nodeASN, a)
			if bfd {
				fmt.Fprintf(&sb, " neighbor %s bfd\n neighbor %s bfd profile pier\n", a, a)
			}
		}
	}
	sb.WriteString(" address-family ipv4 unicast\n")
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, "  no neighbor %s activate\n", nodeAddr6(i))
	}
	sb.WriteString(" exit-address-family\n address-family ipv6 unicast\n")
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, "  neighbor %s activate\n", nodeAddr6(i))
	}
	sb.WriteString(" exit-address-family\n!\n")
	b.startFRRDaemons(sb.String())
	return b
}

// newFRRLab builds a lab with build (its Router runs FRR, its Nodes the
// announcers) and cleans it up after t; startFRRDaemons then starts FRR.
func newFRRLab(t testing.TB, build func(*lab.Lab) (*lab.Site, error)) *bgpLab {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "ip", "vtysh")
	for _, d := range []string{"zebra", "bfdd", "bgpd"} {
		if _, err := os.Stat("/usr/lib/frr/" + d); err != nil {
			prereq.Missing(t, "needs /usr/lib/frr/%s (hack/deps.sh installs frr)", d)
		}
	}
	l, err := lab.New(lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bgpLab{t: t, lab: l, frrName: l.Prefix + "r", dir: t.TempDir(), procs: map[int]*lab.Process{}, cfgs: map[int]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range b.procs {
				t.Logf("node%d announcer output (tail):\n%s", i, p.OutputTail(60))
			}
			for _, p := range b.frrProcs {
				t.Logf("%s output (tail):\n%s", p.name, p.p.OutputTail(40))
			}
			peers, _ := b.vtysh("show bfd peers")
			t.Logf("FRR bfd peers:\n%s", peers)
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		os.RemoveAll(filepath.Join("/var/run/frr", b.frrName))
	})
	for _, d := range []string{b.dir, filepath.Dir(b.dir)} { // the daemons run as user frr
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if b.site, err = build(l); err != nil {
		t.Fatal(err)
	}
	return b
}

// startFRRDaemons starts zebra, bfdd (profile pier: 300 ms x 3) and bgpd
// with the configuration bgp on the lab's FRR host.
func (b *bgpLab) startFRRDaemons(bgp string) {
	b.t.Helper()
	if _, err := lab.FRRRunDir(b.frrName); err != nil {
		b.t.Fatal(err)
	}
	head := fmt.Sprintf("frr defaults traditional\nhostname %s\nlog stdout informational\n!\n", b.frrName)
	b.startDaemon("zebra", head, "show interface brief")
	b.startDaemon("bfdd", head+"bfd\n profile pier\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n",
		"show bfd peers json")
	b.frr = b.startDaemon("bgpd", head+bgp, "show bgp summary json")
}

type frrProc struct {
	name string
	p    *lab.Process
}

// startDaemon starts one FRR daemon on the lab's FRR host with
// configuration conf and waits until vtysh gets an answer to probe.
func (b *bgpLab) startDaemon(daemon, conf, probe string) *lab.Process {
	t := b.t
	t.Helper()
	file := filepath.Join(b.dir, daemon+".conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// bgpd reads a generated config of many networks for a while.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+time.Duration(len(b.networks))*time.Millisecond)
	defer cancel()
	p, err := lab.StartFRRDaemon(ctx, b.frrHost(), b.frrName, daemon, file, probe)
	if p != nil {
		b.frrProcs = append(b.frrProcs, frrProc{daemon, p})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (b *bgpLab) daemon(name string) *lab.Process {
	for _, p := range b.frrProcs {
		if p.name == name {
			return p.p
		}
	}
	b.t.Fatalf("no FRR daemon %s", name)
	return nil
}

// bfdPeers are node i's sessions with the router, IPv4 and IPv6, with bfd
// (nil: none) and a 3 s hold time (the fastest BGP allows).
func bfdPeers(bfd *bgp.BFD) []bgp.Peer {
	return []bgp.Peer{
		{Name: "frr", Address: netip.MustParseAddr("198.51.100.1"), MyASN: nodeASN, PeerASN: routerASN,
			HoldTime: 3 * time.Second, ConnectTime: time.Second, BFD: bfd},
		{Name: "frr6", Address: routerAddr6, MyASN: nodeASN, PeerASN: routerASN,
			HoldTime: 3 * time.Second, ConnectTime: time.Second, BFD: bfd},
	}
}

var bfdPaths = []bgp.Path{{Prefix: vip}, {Prefix: vip6}}

// frrBFDPeer is a session as FRR's `show bfd peers json` reports it.
type frrBFDPeer struct {
	Peer           string `json:"peer"`
	Status         string `json:"status"`
	Multihop       bool   `json:"multihop"`
	Local          string `json:"local"`
	Interface      string `json:"interface"`
	RemoteTransmit int    `json:"remote-transmit-interval"`
	RemoteReceive  int    `json:"remote-receive-interval"`
}

func (b *bgpLab) frrBFDPeers() (map[string]frrBFDPeer, error) {
	var list []frrBFDPeer
	if err := b.vtyshJSON("show bfd peers json", &list); err != nil {
		return nil, err
	}
	out := map[string]frrBFDPeer{}
	for _, p := range list {
		out[p.Peer] = p
	}
	return out, nil
}

// bgpdJSON runs a vtysh command against the router's bgpd alone (vtysh
// otherwise waits for every daemon, a frozen bfdd too) and decodes its
// JSON output into v.
func (b *bgpLab) bgpdJSON(cmd string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "-N", b.frrName, "-d", "bgpd", "-c", cmd).Output()
	if err != nil {
		return fmt.Errorf("vtysh -d bgpd -c %q: %w: %s", cmd, err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("vtysh -d bgpd -c %q: %w: %.300s", cmd, err, out)
	}
	return nil
}

// bgpdNeighbors is lab.FRRNeighbors from bgpd alone.
func (b *bgpLab) bgpdNeighbors() (map[string]lab.FRRNeighbor, error) {
	var n map[string]lab.FRRNeighbor
	return n, b.bgpdJSON("show bgp neighbors json", &n)
}

// frrHasRoute reports whether FRR has a path for p.
func (b *bgpLab) frrHasRoute(p netip.Prefix) (bool, error) {
	var r frrRoute
	family := "ipv4"
	if p.Addr().Is6() {
		family = "ipv6"
	}
	err := b.bgpdJSON("show bgp "+family+" unicast "+p.String()+" json", &r)
	return len(r.Paths) > 0, err
}

// waitBFDUp waits until node i's sessions with FRR are Established, with
// BFD Up on both sides, and FRR has node i's paths.
func (b *bgpLab) waitBFDUp(i int) {
	b.t.Helper()
	b.poll("BGP established, BFD up and routes at FRR", 30*time.Second, func() error {
		n, err := b.frrNeighbors()
		if err != nil {
			return err
		}
		bp, err := b.frrBFDPeers()
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{nodeAddr(i), nodeAddr6(i)} {
			if s := n[a.String()].BGPState; s != "Established" {
				return fmt.Errorf("FRR BGP with %s: %q", a, s)
			}
			if s := bp[a.String()].Status; s != "up" {
				return fmt.Errorf("FRR BFD with %s: %q", a, s)
			}
		}
		for _, p := range []netip.Prefix{vip, vip6} {
			if ok, err := b.frrHasRoute(p); err != nil || !ok {
				return fmt.Errorf("FRR has no route for %s (%v)", p, err)
			}
		}
		for _, name := range []string{"frr", "frr6"} {
			if st := b.peerStatus(i, name); st.BFDState != "Up" || st.State != "Established" {
				return fmt.Errorf("node%d's %s: BGP %s, BFD %q", i, name, st.State, st.BFDState)
			}
		}
		return nil
	})
}

// waitRoutesGone waits until FRR has neither of node i's paths and
// returns how long that took from start.
func (b *bgpLab) waitRoutesGone(start time.Time, within time.Duration) time.Duration {
	b.t.Helper()
	var took time.Duration
	lab.Poll(b.t, "routes gone at FRR", 5*time.Millisecond, within, func() error {
		for _, p := range []netip.Prefix{vip, vip6} {
			if ok, err := b.frrHasRoute(p); err != nil || ok {
				return fmt.Errorf("FRR still has %s (%v)", p, err)
			}
		}
		took = time.Since(start)
		return nil
	})
	return took
}

// TestBFDWithFRR: BGP sessions with BFD to FRR (IPv4 and IPv6): BFD comes
// up and shows in the status; a frozen node loses its routes at FRR
// through BFD, well before the hold time; a frozen bfdd on the router
// makes the node close its BGP sessions and hold them down until BFD is
// back; interval changes keep the sessions.
func TestBFDWithFRR(t *testing.T) {
	b := newBFDLab(t, 1, true)
	b.configure(1, bfdPeers(&bgp.BFD{}), bfdPaths)
	b.waitBFDUp(1)

	t.Run("frozen node", func(t *testing.T) {
		b.t = t
		b.freezeNode1()
	})

	t.Run("frozen bfdd at the router", func(t *testing.T) {
		b.t = t
		bfdd := b.daemon("bfdd")
		n, err := b.bgpdNeighbors()
		if err != nil {
			t.Fatal(err)
		}
		est := n[nodeAddr(1).String()].ConnectionsEstablished
		if err := bfdd.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer bfdd.Signal(syscall.SIGCONT) //nolint:errcheck // again after a failure
		// Our BFD times out and we close both sessions; FRR's bgpd gets
		// the Cease (its bfdd, frozen, tells it nothing).
		b.poll("node closes its sessions", 15*time.Second, func() error {
			for _, name := range []string{"frr", "frr6"} {
				st := b.peerStatus(1, name)
				if st.State == "Established" || st.BFDState != "Down" || !strings.Contains(st.LastError, "BFD down") {
					return fmt.Errorf("%s: BGP %s, BFD %s, last error %q", name, st.State, st.BFDState, st.LastError)
				}
			}
			n, err := b.bgpdNeighbors()
			if err != nil {
				return err
			}
			for _, a := range []netip.Addr{nodeAddr(1), nodeAddr6(1)} {
				if s := n[a.String()].BGPState; s == "Established" {
					return fmt.Errorf("FRR BGP with %s still established", a)
				}
			}
			return nil
		})
		// Held down: a connect time of 1s would have brought it back by
		// now without the hold.
		time.Sleep(3 * time.Second)
		if n, err := b.bgpdNeighbors(); err != nil || n[nodeAddr(1).String()].ConnectionsEstablished != est {
			t.Errorf("session came back while BFD was down (%v): established %d -> %d", err, est, n[nodeAddr(1).String()].ConnectionsEstablished)
		}
		if err := bfdd.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		b.waitBFDUp(1)
		if st := b.peerStatus(1, "frr"); strings.Contains(st.LastError, "BFD down") {
			t.Errorf("last error still %q with BFD up", st.LastError)
		}
	})

	t.Run("router shuts its BFD session (AdminDown)", func(t *testing.T) {
		b.t = t
		b.routerAdminDown()
	})

	t.Run("interval change keeps the sessions", func(t *testing.T) {
		b.t = t
		n, err := b.frrNeighbors()
		if err != nil {
			t.Fatal(err)
		}
		est := n[nodeAddr(1).String()].ConnectionsEstablished
		b.configure(1, bfdPeers(&bgp.BFD{DesiredMinTx: 200 * time.Millisecond, RequiredMinRx: 250 * time.Millisecond}), bfdPaths)
		b.poll("FRR sees the new intervals", 15*time.Second, func() error {
			bp, err := b.frrBFDPeers()
			if err != nil {
				return err
			}
			if p := bp[nodeAddr(1).String()]; p.RemoteTransmit != 200 || p.RemoteReceive != 250 || p.Status != "up" {
				return fmt.Errorf("FRR: %+v", p)
			}
			return nil
		})
		n, err = b.frrNeighbors()
		if err != nil {
			t.Fatal(err)
		}
		if got := n[nodeAddr(1).String()]; got.ConnectionsEstablished != est || got.BGPState != "Established" {
			t.Errorf("BGP session reset by an interval change: %+v, established before %d", got, est)
		}
	})

	t.Run("bfd removed", func(t *testing.T) {
		b.t = t
		b.configure(1, bfdPeers(nil), bfdPaths)
		b.poll("no BFD in the status", 15*time.Second, func() error {
			for _, name := range []string{"frr", "frr6"} {
				if st := b.peerStatus(1, name); st.BFDState != "" {
					return fmt.Errorf("%s: BFD %q", name, st.BFDState)
				}
			}
			return nil
		})
	})
}

// freezeNode1 stops node1's announcer (SIGSTOP): FRR must drop its
// routes for BFD, before the 3 s hold time; then it resumes and comes
// back up.
func (b *bgpLab) freezeNode1() {
	t := b.t
	t.Helper()
	n, err := b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	before := n[nodeAddr(1).String()].ConnectionsDropped
	start := time.Now()
	if err := b.procs[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := b.waitRoutesGone(start, 10*time.Second)
	t.Logf("routes gone at FRR %s after SIGSTOP (BFD 300ms x 3, hold time 3s; machine shared)", took)
	for _, a := range []netip.Addr{nodeAddr(1), nodeAddr6(1)} {
		var why map[string]map[string]any
		if err := b.bgpdJSON("show bgp neighbors "+a.String()+" json", &why); err != nil {
			t.Fatal(err)
		}
		if r := fmt.Sprint(why[a.String()]["lastNotificationReason"]); !strings.Contains(r, "BFD") {
			t.Errorf("FRR dropped the session with %s for %q, want BFD", a, r)
		}
	}
	if err := b.procs[1].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	b.waitBFDUp(1)
	n, err = b.frrNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if after := n[nodeAddr(1).String()].ConnectionsDropped; after <= before {
		t.Errorf("FRR's dropped connections %d -> %d: the session never went down", before, after)
	}
}

// routerAdminDown shuts FRR's BFD session with node1's IPv4 address
// (`shutdown` in its bfd peer: the router sends AdminDown): BFD goes down
// at the node, but BGP stays up, its routes at FRR (RFC 5880 6.8.16, RFC
// 5882 3.2); `no shutdown` brings BFD back.
func (b *bgpLab) routerAdminDown() {
	t := b.t
	t.Helper()
	n, err := b.bgpdNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	est := n[nodeAddr(1).String()].ConnectionsEstablished
	b.frrBFDShutdown(nodeAddr(1), true)
	defer b.frrBFDShutdown(nodeAddr(1), false)
	b.poll("FRR's BFD session shut, the node's down", 15*time.Second, func() error {
		bp, err := b.frrBFDPeers()
		if err != nil {
			return err
		}
		if s := bp[nodeAddr(1).String()].Status; s != "shutdown" {
			return fmt.Errorf("FRR's BFD with %s: %q", nodeAddr(1), s)
		}
		if st := b.peerStatus(1, "frr"); st.BFDState != "Down" {
			return fmt.Errorf("node1's BFD with FRR: %q", st.BFDState)
		}
		return nil
	})
	// Past BFD's detection time (0.9 s) and BGP's hold time (3 s): a
	// node taking AdminDown for a failure would have closed BGP by now.
	time.Sleep(4 * time.Second)
	st := b.peerStatus(1, "frr")
	if st.State != "Established" || strings.Contains(st.LastError, "BFD") {
		t.Errorf("node1's session with FRR: %s, last error %q; want Established, BFD not blamed", st.State, st.LastError)
	}
	if n, err := b.bgpdNeighbors(); err != nil || n[nodeAddr(1).String()].ConnectionsEstablished != est ||
		n[nodeAddr(1).String()].BGPState != "Established" {
		t.Errorf("FRR's BGP session with node1 (%v): %+v, established %d before", err, n[nodeAddr(1).String()], est)
	}
	if ok, err := b.frrHasRoute(vip); err != nil || !ok {
		t.Errorf("FRR lost %s with BFD shut (%v)", vip, err)
	}
	b.frrBFDShutdown(nodeAddr(1), false)
	b.waitBFDUp(1)
}

// frrBFDShutdown shuts (or opens again) FRR's BFD session with peer,
// naming it as FRR keys it.
func (b *bgpLab) frrBFDShutdown(peer netip.Addr, shut bool) {
	b.t.Helper()
	bp, err := b.frrBFDPeers()
	if err != nil {
		b.t.Fatal(err)
	}
	p, ok := bp[peer.String()]
	if !ok {
		b.t.Fatalf("FRR has no BFD session with %s: %+v", peer, bp)
	}
	key := "peer " + p.Peer
	if p.Multihop {
		key += " multihop"
	}
	if p.Local != "" {
		key += " local-address " + p.Local
	}
	if p.Interface != "" {
		key += " interface " + p.Interface
	}
	cmd := "shutdown"
	if !shut {
		cmd = "no shutdown"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "-N", b.frrName, "-c", "configure terminal", "-c", "bfd", "-c", key, "-c", cmd).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "%") && !strings.Contains(line, "vtysh.conf") { // vtysh fails with 0 on a bad command
			err = errors.Join(err, errors.New(line))
		}
	}
	if err != nil {
		b.t.Fatalf("vtysh bfd, %s, %s: %v: %s", key, cmd, err, out)
	}
}

// waitUp waits until node i's sessions with FRR are Established and FRR
// has its paths (with BFD Up too when withBFD).
func (b *bgpLab) waitUp(i int, withBFD bool) {
	b.t.Helper()
	if withBFD {
		b.waitBFDUp(i)
		return
	}
	b.poll("BGP established and routes at FRR", 60*time.Second, func() error {
		for _, p := range []netip.Prefix{vip, vip6} {
			if ok, err := b.frrHasRoute(p); err != nil || !ok {
				return fmt.Errorf("FRR has no route for %s (%v)", p, err)
			}
		}
		return nil
	})
}

// BenchmarkFailover measures how long a failed node's routes stay at FRR,
// with BFD (300 ms x 3) and without (hold time 3 s): from the failure
// (SIGSTOP of the node's announcer, or its link set down in its
// namespace) until FRR has neither of its paths (IPv4, IPv6), polled
// through vtysh every 5 ms. Run it with a few iterations:
//
//	CI=true go test -run '^$' -bench Failover -benchtime 5x ./speaker/bgp
func BenchmarkFailover(b *testing.B) {
	for _, mode := range []struct {
		name string
		bfd  *bgp.BFD
	}{{"bfd-300msx3", &bgp.BFD{}}, {"holdtime-3s", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			l := newBFDLab(b, 1, mode.bfd != nil)
			l.configure(1, bfdPeers(mode.bfd), bfdPaths)
			l.waitUp(1, mode.bfd != nil)
			node := l.site.Nodes[0]
			_, v6 := lab.NodeAddrs(1)
			for _, f := range []struct {
				name         string
				fail, repair func() error
			}{
				{"frozen", func() error { return l.procs[1].Signal(syscall.SIGSTOP) }, func() error { return l.procs[1].Signal(syscall.SIGCONT) }},
				{"link-down", func() error { return node.SetLink("eth1", false) }, func() error {
					if err := node.SetLink("eth1", true); err != nil {
						return err
					}
					// The kernel drops static IPv6 addresses with the link.
					if err := node.AddAddr("eth1", v6); err != nil && !errors.Is(err, syscall.EEXIST) {
						return err
					}
					return nil
				}},
			} {
				b.Run(f.name, func(b *testing.B) {
					l.t = b
					var total, lo, hi time.Duration
					for range b.N {
						l.waitUp(1, mode.bfd != nil)
						start := time.Now()
						if err := f.fail(); err != nil {
							b.Fatal(err)
						}
						took := l.waitRoutesGone(start, 20*time.Second)
						total += took
						if lo == 0 || took < lo {
							lo = took
						}
						hi = max(hi, took)
						if err := f.repair(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/withdrawal")
					b.ReportMetric(float64(lo.Milliseconds()), "min-ms")
					b.ReportMetric(float64(hi.Milliseconds()), "max-ms")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}

var birdAddr6 = netip.MustParsePrefix("2001:db8:100::2/64")

// TestBFDWithBIRD: BGP sessions with BFD to BIRD 2 (iBGP, single hop,
// IPv4 and IPv6): BFD comes up on both sides and shows in the status;
// when the node freezes, BIRD's BFD closes the sessions and drops the
// node's routes, well before the 9 s hold time.
func TestBFDWithBIRD(t *testing.T) {
	prereq.Root(t)
	prereq.Tools(t, "ip", "bird", "birdc")
	b := &bgpLab{t: t, lab: lab.ForTest(t), dir: t.TempDir(), procs: map[int]*lab.Process{}, cfgs: map[int]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range b.procs {
				t.Logf("node%d announcer output (tail):\n%s", i, p.OutputTail(60))
			}
			out, _ := b.birdc("show", "bfd", "sessions")
			t.Logf("BIRD bfd sessions:\n%s", out)
		}
	})
	var err error
	if b.site, err = b.lab.BuildSite(lab.SiteOptions{Nodes: 1}); err != nil {
		t.Fatal(err)
	}
	h, err := b.lab.AddHost("bird")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.site.Segment.Connect(h, "eth1", birdAddr, birdAddr6); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "router id %s;\nprotocol device {}\n", birdAddr.Addr())
	sb.WriteString("protocol bfd {\n interface \"*\" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };\n}\n")
	for _, s := range []struct {
		name, family string
		local, peer  netip.Addr
	}{{"node1", "ipv4", birdAddr.Addr(), nodeAddr(1)}, {"node1v6", "ipv6", birdAddr6.Addr(), nodeAddr6(1)}} {
		fmt.Fprintf(&sb, "protocol bgp %s {\n local %s as %d;\n neighbor %s as %d;\n passive on;\n direct;\n bfd on;\n"+
			" %s { import all; export none; gateway direct; };\n}\n", s.name, s.local, nodeASN, s.peer, nodeASN, s.family)
	}
	conf := filepath.Join(b.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	b.birdSock = filepath.Join(b.dir, "bird.ctl")
	p, err := h.Start("bird", "-f", "-c", conf, "-s", b.birdSock, "-P", filepath.Join(b.dir, "bird.pid"))
	if err != nil {
		t.Fatal(err)
	}
	b.poll("bird answers birdc", 15*time.Second, func() error {
		if _, err := b.birdc("show", "status"); err != nil {
			return fmt.Errorf("%w; bird output:\n%s", err, p.Output())
		}
		return nil
	})
	peers := []bgp.Peer{
		{Name: "bird", Address: birdAddr.Addr(), MyASN: nodeASN, PeerASN: nodeASN, HoldTime: 9 * time.Second, ConnectTime: time.Second, BFD: &bgp.BFD{}},
		{Name: "bird6", Address: birdAddr6.Addr(), MyASN: nodeASN, PeerASN: nodeASN, HoldTime: 9 * time.Second, ConnectTime: time.Second, BFD: &bgp.BFD{}},
	}
	b.configure(1, peers, bfdPaths)
	birdRoutes := func() (int, error) {
		n := 0
		for _, pfx := range []netip.Prefix{vip, vip6} {
			out, err := b.birdc("show", "route", "for", pfx.String())
			if err != nil && strings.Contains(err.Error(), "Network not found") {
				continue // birdc fails when it has no route
			}
			if err != nil {
				return 0, err
			}
			if strings.Contains(out, pfx.String()) {
				n++
			}
		}
		return n, nil
	}
	b.poll("BGP and BFD up with BIRD, routes there", 30*time.Second, func() error {
		out, err := b.birdc("show", "bfd", "sessions")
		if err != nil {
			return err
		}
		for _, a := range []netip.Addr{nodeAddr(1), nodeAddr6(1)} {
			if !strings.Contains(out, a.String()) || strings.Count(out, " Up ") < 2 {
				return fmt.Errorf("BIRD bfd sessions:\n%s", out)
			}
		}
		if n, err := birdRoutes(); err != nil || n != 2 {
			return fmt.Errorf("BIRD has %d of 2 routes (%v)", n, err)
		}
		for _, name := range []string{"bird", "bird6"} {
			if st := b.peerStatus(1, name); st.BFDState != "Up" || st.State != "Established" {
				return fmt.Errorf("node1's %s: BGP %s, BFD %q", name, st.State, st.BFDState)
			}
		}
		return nil
	})
	start := time.Now()
	if err := b.procs[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer b.procs[1].Signal(syscall.SIGCONT) //nolint:errcheck // the lab's cleanup stops it
	var took time.Duration
	lab.Poll(t, "routes gone at BIRD", 5*time.Millisecond, 8*time.Second, func() error {
		if n, err := birdRoutes(); err != nil || n != 0 {
			return fmt.Errorf("BIRD has %d routes (%v)", n, err)
		}
		took = time.Since(start)
		return nil
	})
	t.Logf("routes gone at BIRD %s after SIGSTOP (BFD 300ms x 3, hold time 9s; machine shared)", took)
	out, err := b.birdc("show", "protocols", "all", "node1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "BFD") {
		t.Errorf("BIRD closed the session for another reason than BFD:\n%s", out)
	}
}
