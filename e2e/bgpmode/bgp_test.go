package bgpmode

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/pierctl/status"
)

// TestBGPMode runs the whole BGP mode in one site (its steps build on each
// other): real pier-controller and pier-speakers on three nodes, FRR on the
// router (eBGP over IPv4, iBGP over IPv6) and BIRD 2 on the segment (iBGP
// with a TCP MD5 password from a Secret).
func TestBGPMode(t *testing.T) {
	w := newWorld(t, true)
	w.configure(true)
	w.env.StartEcho(t, binary(t, "pier-lab"), ":8443", ":8443")
	addr := w.createService("calls", "bgp", false)
	agg := w.createService("agg", "agg", false)
	addr6 := w.createService("calls6", "bgp6", true)
	calls := netip.PrefixFrom(addr, 32)

	t.Run("ECMP at FRR and BIRD, client reaches TCP and UDP", func(t *testing.T) {
		w.t = t
		w.wantNextHops(calls, allNodes(), 60*time.Second)
		poll(t, "BIRD routes "+addr.String()+" via every node", 30*time.Second, func() error {
			out, err := w.bird.Birdc("show", "route", "for", addr.String())
			for i := 1; err == nil && i <= 3; i++ {
				if !strings.Contains(out, "via "+nodeAddr(i)+" ") {
					err = fmt.Errorf("no route via node%d:\n%s", i, out)
				}
			}
			return err
		})
		for _, network := range []string{"tcp", "udp"} {
			kubelab.Reach(t, w.env.Site.Client, network, netip.AddrPortFrom(addr, 8443))
		}
	})

	t.Run("attributes and aggregation", func(t *testing.T) {
		w.t = t
		aggPrefix := netip.PrefixFrom(agg, 28).Masked()
		poll(t, "FRR route "+aggPrefix.String(), 30*time.Second, func() error {
			paths, err := w.frr.Route(aggPrefix)
			if err != nil {
				return err
			}
			if len(paths) != 3 {
				return fmt.Errorf("%d paths, want 3", len(paths))
			}
			for _, p := range paths {
				if p.Community == nil || p.Community.String != "65000:100" || p.LargeCommunity == nil || p.LargeCommunity.String != "65000:1:2" {
					return fmt.Errorf("attributes %+v %+v", p.Community, p.LargeCommunity)
				}
			}
			return nil
		})
		if paths, _ := w.frr.Route(netip.PrefixFrom(agg, 32)); len(paths) != 0 {
			t.Errorf("FRR also has the /32 of an aggregated address: %+v", paths)
		}
		// Local preference travels over iBGP only: FRR's IPv6 session and BIRD.
		poll(t, "FRR (iBGP, IPv6) route "+addr6.String()+" with local preference 200", 30*time.Second, func() error {
			paths, err := w.frr.Route(netip.PrefixFrom(addr6, 128))
			if err == nil && len(paths) != 3 {
				err = fmt.Errorf("%d paths, want 3", len(paths))
			}
			for _, p := range paths {
				if err == nil && (p.LocPrf == nil || *p.LocPrf != 200 || p.LargeCommunity == nil) {
					err = fmt.Errorf("path %+v", p)
				}
			}
			return err
		})
		poll(t, "BIRD route "+aggPrefix.String()+" with local preference 200", 30*time.Second, func() error {
			out, err := w.bird.Birdc("show", "route", "for", aggPrefix.String(), "all")
			for _, want := range []string{"BGP.local_pref: 200", "(65000,100)", "(65000, 1, 2)"} {
				if err == nil && !strings.Contains(out, want) {
					err = fmt.Errorf("no %q in:\n%s", want, out)
				}
			}
			return err
		})
		must(t, w.env.Site.Client.AddRoute(pool6, routerAddr6Client))
		for _, network := range []string{"tcp", "udp"} {
			kubelab.Reach(t, w.env.Site.Client, network, netip.AddrPortFrom(addr6, 8443))
		}
	})

	t.Run("BGPSessionStatus and metrics", func(t *testing.T) {
		w.t = t
		sent := map[string]int32{"frr": 2, "bird": 2, "frr6": 1}
		for peer, n := range sent {
			for i := 1; i <= 3; i++ {
				poll(t, fmt.Sprintf("BGPSessionStatus %s-node%d", peer, i), 30*time.Second, func() error {
					st, err := w.sessionStatus(peer, i)
					if err == nil && (st.Status.State != "Established" || st.Status.PrefixesSent != n || st.Status.Since == nil ||
						st.Labels[v1alpha1.LabelBGPPeer] != peer || st.Labels[v1alpha1.LabelNode] != fmt.Sprintf("node%d", i)) {
						err = fmt.Errorf("%+v %v, want Established with %d sent", st.Status, st.Labels, n)
					}
					return err
				})
			}
		}
		m, err := w.metrics(1)
		must(t, err)
		for k, want := range map[string]string{`pier_bgp_session_up{peer="frr"}`: "1", `pier_bgp_session_up{peer="bird"}`: "1",
			`pier_bgp_session_up{peer="frr6"}`: "1", "pier_bgp_announced_prefixes": "3"} {
			if m[k] != want {
				t.Errorf("metric %s = %q, want %s", k, m[k], want)
			}
		}
	})

	t.Run("BGPAnnouncementStatus, ConfigurationStatus and pierctl status", func(t *testing.T) {
		w.t = t
		want := map[string]v1alpha1.BGPServiceAnnouncement{
			"default/calls":  {Service: "default/calls", Addresses: []string{addr.String()}, Peers: []string{"bird", "frr"}},
			"default/calls6": {Service: "default/calls6", Addresses: []string{addr6.String()}, Peers: []string{"frr6"}},
		}
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("node%d", i)
			poll(t, "BGPAnnouncementStatus "+node, 30*time.Second, func() error {
				var obj v1alpha1.BGPAnnouncementStatus
				if err := w.env.Pier.Get(context.Background(), client.ObjectKey{Namespace: kubelab.PierNamespace, Name: node}, &obj); err != nil {
					return err
				}
				got := map[string]v1alpha1.BGPServiceAnnouncement{}
				for _, a := range obj.Status.Services {
					if _, ok := want[a.Service]; ok {
						got[a.Service] = a
					}
				}
				if diff := cmp.Diff(want, got); diff != "" || obj.Status.Node != node {
					return fmt.Errorf("node %q, announcements (-want +got):\n%s", obj.Status.Node, diff)
				}
				return nil
			})
			poll(t, "ConfigurationStatus speaker-"+node+" valid", 30*time.Second, func() error {
				var obj v1alpha1.ConfigurationStatus
				err := w.env.Pier.Get(context.Background(), client.ObjectKey{Namespace: kubelab.PierNamespace, Name: "speaker-" + node}, &obj)
				if err == nil && (!obj.Status.Valid || obj.Status.Node != node) {
					err = fmt.Errorf("status %+v", obj.Status)
				}
				return err
			})
		}
		objs, err := status.Read(context.Background(), w.env.Cluster.Config, kubelab.PierNamespace)
		must(t, err)
		for _, svc := range status.Build(objs).Services {
			if svc.Namespace != "default" || svc.Name != "calls" {
				continue
			}
			var nodes []string
			for _, a := range svc.BGPAnnouncers {
				if strings.Join(a.Peers, ",") == "bird,frr" {
					nodes = append(nodes, a.Node)
				}
			}
			if diff := cmp.Diff([]string{"node1", "node2", "node3"}, nodes); diff != "" {
				t.Errorf("pierctl status: default/calls announced to bird and frr by (-want +got):\n%s\n%+v", diff, svc.BGPAnnouncers)
			}
		}
	})

	t.Run("200 Services created and deleted reset no session", func(t *testing.T) {
		w.t = t
		before, err := w.frr.Neighbors()
		must(t, err)
		birdBefore, err := w.bird.Birdc("show", "protocols")
		must(t, err)
		must(t, w.createMany("churn", "bulk", 200))
		w.waitPrefixes(202, 90*time.Second)
		must(t, w.deleteMany("churn", 200))
		w.waitPrefixes(2, 90*time.Second)
		after, err := w.frr.Neighbors()
		must(t, err)
		for i := 1; i <= 3; i++ {
			for _, a := range []string{nodeAddr(i), nodeAddr6(i)} {
				if b, a2 := before[a], after[a]; a2.BGPState != "Established" || b.ConnectionsEstablished != a2.ConnectionsEstablished ||
					b.ConnectionsDropped != a2.ConnectionsDropped {
					t.Errorf("FRR neighbor %s: before %+v, after %+v", a, b, a2)
				}
			}
		}
		birdAfter, err := w.bird.Birdc("show", "protocols")
		must(t, err)
		if !lab.SameBirdSessions(birdBefore, birdAfter) {
			t.Errorf("BIRD sessions changed (state or since):\nbefore:\n%s\nafter:\n%s", birdBefore, birdAfter)
		}
	})

	t.Run("SIGTERM withdraws, SIGKILL and a hung speaker", func(t *testing.T) {
		w.t = t
		must(t, w.env.Speakers[2].Signal(syscall.SIGTERM))
		t.Logf("SIGTERM: node3 gone from FRR after %s", w.waitGone(calls, nodeAddr(3), 10*time.Second).Round(time.Millisecond))
		w.restartSpeaker(3)
		w.wantNextHops(calls, allNodes(), 30*time.Second)

		must(t, w.env.Speakers[2].Signal(syscall.SIGKILL))
		t.Logf("SIGKILL: node3 gone from FRR after %s (the kernel closes the TCP session at once)",
			w.waitGone(calls, nodeAddr(3), 10*time.Second).Round(time.Millisecond))
		w.restartSpeaker(3)
		w.wantNextHops(calls, allNodes(), 30*time.Second)

		// A stopped process keeps its sockets open: only the hold time (3 s) ends the session.
		must(t, w.env.Speakers[2].Signal(syscall.SIGSTOP))
		gone := w.waitGone(calls, nodeAddr(3), 15*time.Second)
		must(t, w.env.Speakers[2].Signal(syscall.SIGCONT))
		t.Logf("SIGSTOP: node3 gone from FRR after %s (hold time 3 s)", gone.Round(time.Millisecond))
		if gone < 2*time.Second {
			t.Errorf("node3 gone %s after SIGSTOP, before the 3 s hold time could expire", gone)
		}
		w.wantNextHops(calls, allNodes(), 30*time.Second)
	})

	t.Run("restart during an API outage announces from saved state, MD5 peer waits", func(t *testing.T) {
		w.t = t
		node3 := w.env.Site.Nodes[2]
		must(t, node3.SetLink("mgmt0", false))
		defer node3.SetLink("mgmt0", true)
		must(t, w.env.Speakers[2].Signal(syscall.SIGKILL))
		w.waitGone(calls, nodeAddr(3), 10*time.Second)
		w.restartSpeaker(3)
		w.wantNextHops(calls, allNodes(), 30*time.Second)
		if err := w.env.Speakers[2].WaitOutput(ctxFor(t, 10*time.Second), "needs a TCP MD5 password"); err != nil {
			t.Errorf("no loud line about the waiting MD5 peer: %v", err)
		}
		if out, _ := w.bird.Birdc("show", "protocols", "node3"); strings.Contains(out, "Established") {
			t.Errorf("BIRD session with node3 up without the password from the API:\n%s", out)
		}
		must(t, node3.SetLink("mgmt0", true))
		w.waitBIRD(3, true, 60*time.Second)
	})

	t.Run("wrong MD5 password stays down, said in log and status", func(t *testing.T) {
		w.t = t
		var sec corev1.Secret
		must(t, w.env.Pier.Get(context.Background(), client.ObjectKey{Namespace: config.DefaultPasswordNamespace, Name: "bird-md5"}, &sec))
		sec.Data["password"] = []byte("wrong-password")
		must(t, w.env.Pier.Update(context.Background(), &sec))
		w.waitBIRD(1, false, 30*time.Second)
		if err := w.env.Speakers[0].WaitOutput(ctxFor(t, 30*time.Second), "a TCP MD5 password is set"); err != nil {
			t.Errorf("no MD5 hint in node1's log: %v", err)
		}
		poll(t, "BGPSessionStatus bird-node1 says so", 30*time.Second, func() error {
			st, err := w.sessionStatus("bird", 1)
			if err == nil && (st.Status.State == "Established" || !strings.Contains(st.Status.LastError, "MD5")) {
				err = fmt.Errorf("%+v", st.Status)
			}
			return err
		})
		if out, _ := w.bird.Birdc("show", "protocols", "node1"); strings.Contains(out, "Established") {
			t.Errorf("BIRD session up with a wrong password:\n%s", out)
		}
	})

	t.Run("graceful restart keeps routes and traffic across a speaker restart", func(t *testing.T) {
		w.t = t
		var peer v1alpha1.BGPPeer
		must(t, w.env.Pier.Get(context.Background(), client.ObjectKey{Namespace: kubelab.PierNamespace, Name: "frr"}, &peer))
		peer.Spec.EnableGracefulRestart = true
		must(t, w.env.Pier.Update(context.Background(), &peer))
		w.waitFRRGracefulRestart(30 * time.Second)
		w.wantNextHops(calls, allNodes(), 30*time.Second)
		stream := startStream(t, w.env, netip.AddrPortFrom(addr, 8443))
		time.Sleep(300 * time.Millisecond) // some traffic before the restart
		must(t, w.env.Speakers[2].Signal(syscall.SIGKILL))
		poll(t, "FRR keeps node3's path, stale", 10*time.Second, func() error {
			paths, err := w.frr.Route(calls)
			for _, p := range paths {
				if len(p.Nexthops) > 0 && p.Nexthops[0].IP == nodeAddr(3) && p.Stale {
					return nil
				}
			}
			return errors.Join(err, fmt.Errorf("no stale path via node3: %+v", paths))
		})
		w.restartSpeaker(3)
		poll(t, "node3's path fresh again", 30*time.Second, func() error {
			paths, err := w.frr.Route(calls)
			for _, p := range paths {
				if p.Stale {
					return fmt.Errorf("stale: %+v", p)
				}
			}
			if err == nil && len(paths) != 3 {
				err = fmt.Errorf("%d paths", len(paths))
			}
			return err
		})
		time.Sleep(300 * time.Millisecond) // some traffic after it
		sent, got, gap := stream.stop()
		t.Logf("UDP stream through the restart: %d sent, %d echoed, longest gap %s", sent, got, gap.Round(time.Millisecond))
		if got < sent*9/10 {
			t.Errorf("stream lost %d of %d datagrams", sent-got, sent)
		}
	})

	t.Run("requireReadyEndpoints: the route follows the ready endpoints", func(t *testing.T) {
		w.t = t
		w.followsReadyEndpoints(t)
	})
}

// The client reaches the router's IPv6 side here.
var routerAddr6Client = netip.MustParseAddr("2001:db8:18::1")

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitPrefixes waits until FRR has n IPv4 prefixes from every node.
func (w *world) waitPrefixes(n int, d time.Duration) {
	w.t.Helper()
	poll(w.t, fmt.Sprintf("%d prefixes from every node", n), d, func() error {
		got, err := w.frr.PrefixesFrom()
		for i := 1; err == nil && i <= 3; i++ {
			if have, up := got[nodeAddr(i)]; !up || have != n {
				err = fmt.Errorf("%v (established sessions only)", got)
			}
		}
		return err
	})
}

// waitBIRD waits until BIRD's session with node i is Established (up) or
// not.
func (w *world) waitBIRD(i int, up bool, d time.Duration) {
	w.t.Helper()
	poll(w.t, fmt.Sprintf("BIRD session with node%d established: %v", i, up), d, func() error {
		out, err := w.bird.Birdc("show", "protocols", fmt.Sprintf("node%d", i))
		if err == nil && strings.Contains(out, "Established") != up {
			err = fmt.Errorf("%s", out)
		}
		return err
	})
}

// waitFRRGracefulRestart waits until every IPv4 node session negotiated
// graceful restart.
func (w *world) waitFRRGracefulRestart(d time.Duration) {
	w.t.Helper()
	poll(w.t, "graceful restart negotiated with every node", d, func() error {
		for i := 1; i <= 3; i++ {
			var n map[string]struct {
				GracefulRestartInfo struct {
					RemoteGrMode string `json:"remoteGrMode"`
				} `json:"gracefulRestartInfo"`
			}
			if err := w.frr.JSON("show bgp neighbors "+nodeAddr(i)+" json", &n); err != nil {
				return err
			}
			if m := n[nodeAddr(i)].GracefulRestartInfo.RemoteGrMode; m != "Restart" {
				return fmt.Errorf("node%d: remote mode %q", i, m)
			}
		}
		return nil
	})
}

// stream sends a UDP datagram every 10 ms from the client and counts the
// echoes.
type stream struct {
	cancel func()
	done   chan struct{}
	sent   int
	got    int
	gap    time.Duration
}

func startStream(t *testing.T, env *kubelab.Env, to netip.AddrPort) *stream {
	conn, err := env.Site.Client.Dial(context.Background(), "udp", to.String())
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{cancel: cancel, done: make(chan struct{})}
	recv := make(chan time.Time, 1024)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := conn.Read(buf); err != nil {
				close(recv)
				return
			}
			recv <- time.Now()
		}
	}()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				time.Sleep(200 * time.Millisecond) // late echoes
				conn.Close()
				for at := range recv {
					s.got++
					s.gap = max(s.gap, at.Sub(last))
					last = at
				}
				return
			case at := <-recv:
				s.got++
				s.gap = max(s.gap, at.Sub(last))
				last = at
			case <-tick.C:
				if _, err := conn.Write([]byte(echo.Ready)); err == nil {
					s.sent++
				}
			}
		}
	}()
	return s
}

func (s *stream) stop() (sent, got int, gap time.Duration) {
	s.cancel()
	<-s.done
	return s.sent, s.got, s.gap
}
