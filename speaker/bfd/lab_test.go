package bfd_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	"github.com/pier-lb/pier/speaker/bfd"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
)

// The lab:
//
//	node ========== router ---------------- far
//	198.51.100.11   198.51.100.1            203.0.113.10/24
//	2001:db8:100::11   2001:db8:100::1
//	       ||       203.0.113.1/24 (forwards)
//	router2
//	198.51.100.2
//
// The node, the router and router2 share an L2 segment (198.51.100.0/24,
// 2001:db8:100::/64). The router runs FRR bfdd (and zebra, which bfdd
// needs for a peer bound to an interface) with single hop peers for the
// node over IPv4, IPv6 and IPv6 link-local (fe80::11 to fe80::1 on eth1);
// router2 runs a second bfdd with an IPv4 peer for the node (so two of our
// sessions share one socket); far runs a third with a multihop peer for
// the node, one routed hop away. Our sessions run in the node namespace.
var (
	nodeV4    = netip.MustParseAddr("198.51.100.11")
	nodeV6    = netip.MustParseAddr("2001:db8:100::11")
	routerV4  = netip.MustParseAddr("198.51.100.1")
	router2V4 = netip.MustParseAddr("198.51.100.2")
	routerV6  = netip.MustParseAddr("2001:db8:100::1")
	routerFar = netip.MustParseAddr("203.0.113.1")
	farV4     = netip.MustParseAddr("203.0.113.10")
	nodeLL    = netip.MustParseAddr("fe80::11")
	routerLL  = netip.MustParseAddr("fe80::1")
)

type bfdLab struct {
	t                               testing.TB
	lab                             *lab.Lab
	node, router, router2, far      *lab.Host
	dir                             string
	routerFRR, router2FRR, farFRR   string // vtysh -N instance names
	routerBFDD, router2BFDD, farBFD *lab.Process
	mux                             *bfd.Mux
}

func newBFDLab(t testing.TB) *bfdLab {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "ip", "vtysh")
	if _, err := os.Stat("/usr/lib/frr/bfdd"); err != nil {
		prereq.Missing(t, "needs /usr/lib/frr/bfdd (hack/deps.sh installs frr)")
	}
	l, err := lab.New(lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bfdLab{t: t, lab: l, dir: t.TempDir(), routerFRR: l.Prefix + "r", router2FRR: l.Prefix + "s", farFRR: l.Prefix + "f",
		mux: bfd.NewMux(testLogger(t))}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range []*lab.Process{b.routerBFDD, b.router2BFDD, b.farBFD} {
				if p != nil {
					peers, _ := lab.VTYSH([]string{b.routerFRR, b.router2FRR, b.farFRR}[i], "show bfd peers")
					t.Logf("bfdd in %s, last lines:\n%s\n%s", p.Host.Name, p.OutputTail(40), peers)
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		for _, name := range []string{b.routerFRR, b.router2FRR, b.farFRR} {
			os.RemoveAll(filepath.Join("/var/run/frr", name))
		}
	})
	// bfdd runs as user frr: it must read its config.
	for _, d := range []string{b.dir, filepath.Dir(b.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pfx := func(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }
	var sw *lab.Switch
	steps := []func() error{
		func() (err error) { b.node, err = l.AddHost("node"); return err },
		func() (err error) { b.router, err = l.AddHost("router"); return err },
		func() (err error) { b.router2, err = l.AddHost("router2"); return err },
		func() (err error) { b.far, err = l.AddHost("far"); return err },
		func() (err error) { sw, err = l.AddSwitch("l2"); return err },
		func() error { return sw.Connect(b.node, "eth1", pfx(nodeV4, 24), pfx(nodeV6, 64)) },
		func() error { return sw.Connect(b.router, "eth1", pfx(routerV4, 24), pfx(routerV6, 64)) },
		func() error { return sw.Connect(b.router2, "eth1", pfx(router2V4, 24)) },
		func() error { return b.node.AddAddr("eth1", pfx(nodeLL, 64)) },
		func() error { return b.router.AddAddr("eth1", pfx(routerLL, 64)) },
		func() error { return l.ConnectHosts(b.router, "eth2", b.far, "eth0") },
		func() error { return b.router.EnableForwarding() },
		func() error { return b.router.AddAddr("eth2", pfx(routerFar, 24)) },
		func() error { return b.far.AddAddr("eth0", pfx(farV4, 24)) },
		func() error { return b.node.AddRoute(netip.MustParsePrefix("203.0.113.0/24"), routerV4) },
		func() error { return b.far.AddRoute(netip.MustParsePrefix("198.51.100.0/24"), routerFar) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	peer := func(addr, local netip.Addr, multihop bool) string {
		mh := ""
		if multihop {
			mh = " multihop"
		}
		return fmt.Sprintf(" peer %s%s local-address %s\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n", addr, mh, local)
	}
	ll := fmt.Sprintf(" peer %s interface eth1 local-address %s\n  receive-interval 300\n  transmit-interval 300\n !\n", nodeLL, routerLL)
	b.routerBFDD = b.startBFDD(b.router, b.routerFRR, peer(nodeV4, routerV4, false)+peer(nodeV6, routerV6, false)+ll, true)
	b.router2BFDD = b.startBFDD(b.router2, b.router2FRR, peer(nodeV4, router2V4, false), false)
	b.farBFD = b.startBFDD(b.far, b.farFRR, peer(nodeV4, farV4, true), false)
	return b
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startBFDD starts bfdd in h with peers, after zebra if withZebra (bfdd
// learns interfaces from zebra: a peer bound to an interface needs it).
func (b *bfdLab) startBFDD(h *lab.Host, name, peers string, withZebra bool) *lab.Process {
	t := b.t
	t.Helper()
	conf := filepath.Join(b.dir, name+".conf")
	text := fmt.Sprintf("frr defaults traditional\nhostname %s\nlog stdout debugging\n!\nbfd\n%s!\n", name, peers)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join("/var/run/frr", name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "frr:frr", run).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v: %s", run, err, out)
	}
	if withZebra {
		zconf := filepath.Join(b.dir, name+"-zebra.conf")
		if err := os.WriteFile(zconf, []byte("hostname "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		z, err := h.Start("/usr/lib/frr/zebra", "-N", name, "-f", zconf, "--log", "stdout", "-i", filepath.Join(run, "zebra.pid"))
		if err != nil {
			t.Fatal(err)
		}
		poll(t, "zebra answers vtysh", 15*time.Second, func() error {
			if _, err := lab.VTYSH(name, "show interface brief"); err != nil {
				return fmt.Errorf("%w; zebra output:\n%s", err, z.OutputTail(20))
			}
			return nil
		})
	}
	p, err := h.Start("/usr/lib/frr/bfdd", "-N", name, "-f", conf, "--log", "stdout", "-i", filepath.Join(run, "bfdd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "bfdd answers vtysh", 15*time.Second, func() error {
		if _, err := lab.VTYSH(name, "show bfd peers json"); err != nil {
			return fmt.Errorf("%w; bfdd output:\n%s", err, p.OutputTail(20))
		}
		return nil
	})
	return p
}

// frrPeer is a session as `show bfd peers json` reports it.
type frrPeer struct {
	Peer             string `json:"peer"`
	Local            string `json:"local"`
	Multihop         bool   `json:"multihop"`
	Status           string `json:"status"`
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
	RemoteID         uint32 `json:"remote-id"`
	RemoteReceive    int    `json:"remote-receive-interval"`
	RemoteTransmit   int    `json:"remote-transmit-interval"`
	RemoteDetectMult int    `json:"remote-detect-multiplier"`
}

func frrPeerOf(instance string, peer, local netip.Addr) (frrPeer, error) {
	var ps []frrPeer
	if err := lab.VTYSHJSON(instance, "show bfd peers json", &ps); err != nil {
		return frrPeer{}, err
	}
	for _, p := range ps {
		if p.Peer == peer.String() && p.Local == local.String() {
			return p, nil
		}
	}
	return frrPeer{}, fmt.Errorf("FRR %s has no peer %s from %s", instance, peer, local)
}

// waitFRR waits until FRR shows the peer in status.
func waitFRR(t testing.TB, instance string, peer, local netip.Addr, status string, within time.Duration) frrPeer {
	t.Helper()
	var got frrPeer
	poll(t, fmt.Sprintf("FRR %s: peer %s from %s %s", instance, peer, local, status), within, func() (err error) {
		got, err = frrPeerOf(instance, peer, local)
		if err == nil && got.Status != status {
			err = fmt.Errorf("status %q (diagnostic %q, remote %q)", got.Status, got.Diagnostic, got.RemoteDiagnostic)
		}
		return err
	})
	return got
}

// FRR's session configuration commands for one peer.
func frrConf(t testing.TB, instance string, peerLine string, cmds ...string) {
	t.Helper()
	args := []string{"-N", instance, "-c", "configure terminal", "-c", "bfd", "-c", peerLine}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if out, err := exec.Command("vtysh", args...).CombinedOutput(); err != nil {
		t.Fatalf("vtysh %v: %v: %s", args, err, out)
	}
}

// poll retries f every 20 ms until it returns nil or d passes (lab.Poll).
func poll(t testing.TB, what string, d time.Duration, f func() error) {
	t.Helper()
	lab.Poll(t, what, 20*time.Millisecond, d, f)
}

// ourSession is one of our sessions running in the node namespace.
type ourSession struct {
	*bfd.Session
	changes chan bfd.Change
	cancel  context.CancelFunc
	exited  chan struct{} // closed when Run has returned err
	err     error
}

func (b *bfdLab) start(opts bfd.Options) *ourSession {
	t := b.t
	t.Helper()
	o := &ourSession{changes: make(chan bfd.Change, 64), exited: make(chan struct{})}
	opts.Mux = b.mux
	opts.Logger = testLogger(t)
	opts.OnChange = func(c bfd.Change) { o.changes <- c }
	s, err := bfd.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	o.Session = s
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go func() {
		o.err = b.node.Do(func() error { return s.Run(ctx) })
		close(o.exited)
	}()
	t.Cleanup(o.stop)
	return o
}

// stop cancels Run and waits for it.
func (o *ourSession) stop() {
	o.cancel()
	<-o.exited
}

// wait returns the next change to state to, failing the test after d.
func (o *ourSession) wait(t testing.TB, to bfd.State, d time.Duration) bfd.Change {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case c := <-o.changes:
			if c.To == to {
				return c
			}
		case <-o.exited:
			t.Fatalf("session %s: Run returned %v while waiting for %s", o.Peer(), o.err, to)
		case <-timeout:
			t.Fatalf("session %s: not %s within %s (state %s, stats %+v)", o.Peer(), to, d, o.State(), o.Stats())
		}
	}
}

func opts(local, peer netip.Addr) bfd.Options {
	return bfd.Options{Local: local, Peer: peer, DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
}

// TestFRR runs sessions against FRR's bfdd: up over IPv4, IPv6 and IPv6
// link-local single hop and IPv4 multihop, two sessions on one socket, then each way a peer
// can go: stopped cleanly, silent, shut in FRR, bfdd killed.
func TestFRR(t *testing.T) {
	b := newBFDLab(t)
	v4 := b.start(opts(nodeV4, routerV4))
	v4bOpts := opts(nodeV4, router2V4)
	v4bOpts.Passive = true // FRR is active: ours waits for its first packet
	v4b := b.start(v4bOpts)
	v6 := b.start(opts(nodeV6, routerV6))
	mhOpts := opts(nodeV4, farV4)
	mhOpts.Multihop = true
	mh := b.start(mhOpts)
	llOpts := opts(nodeLL, routerLL)
	llOpts.Interface = "eth1"
	ll := b.start(llOpts)
	// Up within the slow start: a few 1 s packets.
	for _, s := range []*ourSession{v4, v4b, v6, mh, ll} {
		s.wait(t, bfd.Up, 10*time.Second)
	}
	for _, c := range []struct {
		instance    string
		peer, local netip.Addr
		s           *ourSession
	}{
		{b.routerFRR, nodeV4, routerV4, v4}, {b.router2FRR, nodeV4, router2V4, v4b},
		{b.routerFRR, nodeV6, routerV6, v6}, {b.farFRR, nodeV4, farV4, mh},
		{b.routerFRR, nodeLL, routerLL, ll},
	} {
		p := waitFRR(t, c.instance, c.peer, c.local, "up", 5*time.Second)
		if p.RemoteID != c.s.Discriminator() || p.RemoteReceive != 300 || p.RemoteTransmit != 300 || p.RemoteDetectMult != 3 {
			t.Errorf("FRR's view of our session with %s: %+v, want discriminator %d and 300/300/3", c.local, p, c.s.Discriminator())
		}
	}
	t.Logf("mux after bring-up: %+v", b.mux.Stats())
	reg := prometheus.NewPedanticRegistry()
	bfd.NewCollector(b.mux, reg)
	if n, err := testutilSum(reg, "pier_speaker_bfd_session_up"); err != nil || n != 5 {
		t.Errorf("pier_speaker_bfd_session_up sums to %v (%v), want 5", n, err)
	}

	t.Run("drops", func(t *testing.T) { b.checkDrops(t) })

	// Both sides slow down while Up, each with a Poll Sequence: had
	// either side kept its 900 ms detection time against 1 s packets,
	// the session would flap.
	t.Run("poll", func(t *testing.T) {
		line := fmt.Sprintf("peer %s local-address %s", nodeV4, routerV4)
		downs := v4.Stats().Downs
		frrConf(t, b.routerFRR, line, "transmit-interval 1000")
		if err := v4.SetIntervals(time.Second, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		poll(t, "FRR sees our 1 s interval", 3*time.Second, func() error {
			p, err := frrPeerOf(b.routerFRR, nodeV4, routerV4)
			if err == nil && p.RemoteTransmit != 1000 {
				err = fmt.Errorf("remote transmit interval %d", p.RemoteTransmit)
			}
			return err
		})
		time.Sleep(3 * time.Second)
		if p := waitFRR(t, b.routerFRR, nodeV4, routerV4, "up", 0); p.RemoteTransmit != 1000 {
			t.Errorf("FRR: %+v", p)
		}
		if got := v4.Stats().Downs; got != downs || v4.State() != bfd.Up {
			t.Fatalf("session went down %d times while the intervals changed; now %s", got-downs, v4.State())
		}
		frrConf(t, b.routerFRR, line, "transmit-interval 300")
		if err := v4.SetIntervals(300*time.Millisecond, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	})

	// Our side stops cleanly: AdminDown tells FRR at once.
	t.Run("stop", func(t *testing.T) {
		start := time.Now()
		v4b.stop()
		p := waitFRR(t, b.router2FRR, nodeV4, router2V4, "down", 2*time.Second)
		t.Logf("FRR shows down %s after the stop began; remote diagnostic %q", time.Since(start), p.RemoteDiagnostic)
		if p.RemoteDiagnostic != "administratively down" {
			t.Errorf("FRR's remote diagnostic %q, want administratively down", p.RemoteDiagnostic)
		}
		// The other session on the shared socket lives on.
		time.Sleep(time.Second)
		if s := v4.State(); s != bfd.Up {
			t.Errorf("the other IPv4 session: %s", s)
		}
	})

	// Our side falls silent: FRR detects it in about 3 × 300 ms.
	t.Run("silent", func(t *testing.T) {
		start := time.Now()
		bfd.Mute(v6.Session, true)
		p := waitFRR(t, b.routerFRR, nodeV6, routerV6, "down", 3*time.Second)
		t.Logf("FRR detected the silent IPv6 session after %s (diagnostic %q)", time.Since(start), p.Diagnostic)
		bfd.Mute(v6.Session, false)
		// FRR says Down: our session follows, then both come back.
		v6.wait(t, bfd.Down, 3*time.Second)
		v6.wait(t, bfd.Up, 10*time.Second)
		waitFRR(t, b.routerFRR, nodeV6, routerV6, "up", 5*time.Second)
	})

	// FRR shuts its side: our session goes Down at once and says why.
	t.Run("frr shutdown", func(t *testing.T) {
		line := fmt.Sprintf("peer %s local-address %s", nodeV6, routerV6)
		frrConf(t, b.routerFRR, line, "shutdown")
		c := v6.wait(t, bfd.Down, 2*time.Second)
		if c.Diag != bfd.DiagNeighborDown || c.RemoteState != bfd.AdminDown {
			t.Errorf("change %+v, want diag neighbor down, remote AdminDown", c)
		}
		frrConf(t, b.routerFRR, line, "no shutdown")
		v6.wait(t, bfd.Up, 10*time.Second)
	})

	// The multihop peer's packets arrive with TTL 254: accepted by the
	// default minimum. bfdd on far dies: detection time expires.
	t.Run("bfdd killed", func(t *testing.T) {
		if err := b.farBFD.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c := mh.wait(t, bfd.Down, 3*time.Second)
		t.Logf("multihop session down %s after SIGKILL", c.At.Sub(start))
		if c.Diag != bfd.DiagControlDetectionTimeExpired {
			t.Errorf("change %+v, want diag detection time expired", c)
		}
	})
}

// checkDrops sends bad packets to the node's single hop socket from the
// router and checks the Mux counted each kind.
func (b *bfdLab) checkDrops(t *testing.T) {
	before := b.mux.Stats()
	good := bfd.Packet{State: bfd.Up, DetectMult: 3, MyDiscriminator: 99, YourDiscriminator: 12345,
		DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	unknown, _ := good.Marshal()
	auth := append(append([]byte(nil), unknown...), 1, 4, 1, 'x')
	auth[1] |= 1 << 2 // A bit
	auth[3] = 28
	send := func(b0 []byte, ttl int) {
		t.Helper()
		err := b.router.Do(func() error {
			c, err := net.ListenPacket("udp4", routerV4.String()+":0")
			if err != nil {
				return err
			}
			defer c.Close()
			if err := ipv4.NewConn(c.(*net.UDPConn)).SetTTL(ttl); err != nil {
				return err
			}
			_, err = c.WriteTo(b0, net.UDPAddrFromAddrPort(netip.AddrPortFrom(nodeV4, bfd.SingleHopPort)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send(unknown, 64)       // bad TTL
	send(unknown, 255)      // unknown discriminator
	send(auth, 255)         // authentication
	send(unknown[:20], 255) // malformed
	want := bfd.MuxStats{BadTTL: 1, UnknownSession: 1, Authentication: 1, Malformed: 1}
	var got bfd.MuxStats
	poll(t, "drops counted", 2*time.Second, func() error {
		s := b.mux.Stats()
		got = bfd.MuxStats{BadTTL: s.BadTTL - before.BadTTL, UnknownSession: s.UnknownSession - before.UnknownSession,
			Authentication: s.Authentication - before.Authentication, Malformed: s.Malformed - before.Malformed}
		if got != want {
			return fmt.Errorf("got %+v, want %+v", got, want)
		}
		return nil
	})
}

func testutilSum(reg *prometheus.Registry, name string) (float64, error) {
	fams, err := reg.Gather()
	sum := 0.0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum, err
}

func TestOptionsErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    bfd.Options
		want string
	}{
		{"no peer", bfd.Options{Local: nodeV4}, "bfd peer invalid IP: want a unicast address"},
		{"no local", bfd.Options{Peer: routerV4}, "bfd peer 198.51.100.1: local address invalid IP"},
		{"families", bfd.Options{Local: nodeV6, Peer: routerV4}, "not of the peer's family"},
		{"short interval", bfd.Options{Local: nodeV4, Peer: routerV4, DesiredMinTx: time.Millisecond}, "desired min tx 1ms"},
		{"single hop ttl", bfd.Options{Local: nodeV4, Peer: routerV4, MinTTL: 254}, "single hop requires 255"},
		{"link-local", bfd.Options{Local: netip.MustParseAddr("fe80::1"), Peer: netip.MustParseAddr("fe80::2")}, "link-local peer without an interface"},
		{"link-local multihop", bfd.Options{Local: netip.MustParseAddr("fe80::1"), Peer: netip.MustParseAddr("fe80::2"), Multihop: true}, "multihop to a link-local"},
	} {
		_, err := bfd.New(tt.o)
		if err == nil || !errors.Is(err, bfd.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want ErrInvalid containing %q", tt.name, err, tt.want)
		}
	}
	s, err := bfd.New(bfd.Options{Local: netip.MustParseAddr("fe80::1"), Peer: netip.MustParseAddr("fe80::2"), Interface: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Peer().String(); got != "fe80::2%eth1" {
		t.Errorf("link-local peer %s, want it zoned", got)
	}
}

// BenchmarkDetectDown measures failure detection between our session and
// FRR with 300 ms intervals and multiplier 3 (a detection time of 900 ms
// after the last packet, 600-900 ms after the failure):
//   - frr-detects-us: our session falls silent; time until `show bfd peers`
//     says down (includes up to one 20 ms poll and a vtysh run).
//   - we-detect-frr: bfdd is frozen (SIGSTOP); time until our OnChange
//     reports Down.
//
// Each round waits for the session to come back Up, which takes the 1 s
// slow start; run with -benchtime=5x or so.
func BenchmarkDetectDown(b *testing.B) {
	l := newBFDLab(b)
	s := l.start(opts(nodeV4, routerV4))
	s.wait(b, bfd.Up, 10*time.Second)
	waitFRR(b, l.routerFRR, nodeV4, routerV4, "up", 5*time.Second)
	recover := func() {
		s.wait(b, bfd.Up, 15*time.Second)
		waitFRR(b, l.routerFRR, nodeV4, routerV4, "up", 10*time.Second)
	}

	b.Run("frr-detects-us", func(b *testing.B) {
		var total time.Duration
		n := 0
		for b.Loop() {
			start := time.Now()
			bfd.Mute(s.Session, true)
			waitFRR(b, l.routerFRR, nodeV4, routerV4, "down", 5*time.Second)
			total += time.Since(start)
			n++
			b.StopTimer()
			bfd.Mute(s.Session, false)
			recover()
			b.StartTimer()
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms/detect")
	})
	b.Run("we-detect-frr", func(b *testing.B) {
		var total time.Duration
		n := 0
		for b.Loop() {
			start := time.Now()
			if err := l.routerBFDD.Signal(syscall.SIGSTOP); err != nil {
				b.Fatal(err)
			}
			c := s.wait(b, bfd.Down, 5*time.Second)
			total += c.At.Sub(start)
			n++
			b.StopTimer()
			if err := l.routerBFDD.Signal(syscall.SIGCONT); err != nil {
				b.Fatal(err)
			}
			recover()
			b.StartTimer()
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms/detect")
	})
}

// TestRunErrors: Run fails at once, and says why, for an address the host
// lacks, a second session to the same peer on one Mux, and a second Run.
func TestRunErrors(t *testing.T) {
	l := lab.ForTest(t)
	h, err := l.AddHost("node")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddAddr("lo", netip.PrefixFrom(nodeV4, 32)); err != nil {
		t.Fatal(err)
	}
	run := func(s *bfd.Session, ctx context.Context) error {
		return h.Do(func() error { return s.Run(ctx) })
	}
	missing, err := bfd.New(opts(netip.MustParseAddr("198.51.100.99"), routerV4))
	if err != nil {
		t.Fatal(err)
	}
	if err := run(missing, context.Background()); err == nil || !strings.Contains(err.Error(), "198.51.100.99") {
		t.Errorf("Run without the local address = %v", err)
	}

	mux := bfd.NewMux(nil)
	o := opts(nodeV4, routerV4)
	o.Mux = mux
	first, err := bfd.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(first, ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("first Run: %v", err)
		}
	}()
	poll(t, "first session registered", 5*time.Second, func() error {
		if first.Discriminator() == 0 {
			return errors.New("no discriminator yet")
		}
		return nil
	})
	second, err := bfd.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(second, context.Background()); err == nil || !strings.Contains(err.Error(), "runs already") {
		t.Errorf("second session to the same peer: Run = %v", err)
	}
	if err := first.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run = %v", err)
	}
}

// TestOurselves runs our session against our session, in two namespaces:
// one active, one passive. It checks what FRR cannot show: a restarted
// peer (new discriminator) is taken back, and a passive session that lost
// its peer falls silent and comes back when the peer returns.
func TestOurselves(t *testing.T) {
	l := lab.ForTest(t)
	a, err := l.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.AddHost("p")
	if err != nil {
		t.Fatal(err)
	}
	aAddr, pAddr := netip.MustParseAddr("2001:db8:100::a"), netip.MustParseAddr("2001:db8:100::b")
	if err := l.ConnectHosts(a, "eth0", p, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("eth0", netip.PrefixFrom(aAddr, 64)); err != nil {
		t.Fatal(err)
	}
	if err := p.AddAddr("eth0", netip.PrefixFrom(pAddr, 64)); err != nil {
		t.Fatal(err)
	}
	startIn := func(h *lab.Host, o bfd.Options) *ourSession {
		return (&bfdLab{t: t, node: h, mux: bfd.NewMux(testLogger(t))}).start(o)
	}
	po := opts(pAddr, aAddr)
	po.Passive = true
	passive := startIn(p, po)
	active := startIn(a, opts(aAddr, pAddr))
	active.wait(t, bfd.Up, 10*time.Second)
	passive.wait(t, bfd.Up, 5*time.Second)

	// The active side stops: the passive one hears AdminDown.
	active.stop()
	c := passive.wait(t, bfd.Down, 2*time.Second)
	if c.Diag != bfd.DiagNeighborDown || c.RemoteState != bfd.AdminDown {
		t.Errorf("passive side: %+v, want neighbor down from AdminDown", c)
	}
	// A new session (new discriminator) in its place comes up.
	active = startIn(a, opts(aAddr, pAddr))
	active.wait(t, bfd.Up, 10*time.Second)
	passive.wait(t, bfd.Up, 5*time.Second)

	// The active side falls silent: the passive one detects it, then
	// stops sending too (it forgot the peer).
	bfd.Mute(active.Session, true)
	c = passive.wait(t, bfd.Down, 3*time.Second)
	if c.Diag != bfd.DiagControlDetectionTimeExpired {
		t.Errorf("passive side: %+v, want detection time expired", c)
	}
	// The passive side forgot the peer at once (a Detection Time without
	// packets zeroes the remote discriminator, RFC 5880 §6.8.1), so it
	// sends nothing: the active side detects the silence on its own.
	c = active.wait(t, bfd.Down, 3*time.Second)
	if c.Diag != bfd.DiagControlDetectionTimeExpired {
		t.Errorf("active side: %+v, want detection time expired", c)
	}
	sent := passive.Stats().Sent
	time.Sleep(1500 * time.Millisecond)
	if got := passive.Stats().Sent; got != sent {
		t.Errorf("passive session without a peer sent %d packets", got-sent)
	}
	bfd.Mute(active.Session, false)
	active.wait(t, bfd.Up, 10*time.Second)
	passive.wait(t, bfd.Up, 5*time.Second)
}
