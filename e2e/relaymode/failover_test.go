package relaymode

import (
	"context"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// udpOnlyPort is the listener of Relay "calls-udp": UDP only, so its
// backends have no TCP port for the active check ("calls-udp-hc", with a
// health check port, listens on the next port).
const udpOnlyPort = 16386

// udpOnlyRelay is a Relay with one UDP listener on port (backend port
// backendUDP, the slice's calls-udp port) and the given health check port
// (0: none).
func udpOnlyRelay(name string, port, healthPort int32) *v1alpha1.Relay {
	return &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.RelaySpec{
			Listeners: []v1alpha1.RelayListener{{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: port}},
			Backend:   v1alpha1.RelayBackend{ServiceName: backendSvc, HealthCheckPort: healthPort},
			Exposure:  v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer},
		},
	}
}

// failure is a way a server dies, and how it comes back.
type failure struct {
	name    string
	kill    func(t testing.TB, s *site, name string)
	restore func(t testing.TB, s *site, name string)
}

var failures = []failure{
	{"SIGKILL of the stand-ins", killEchoes, func(t testing.TB, s *site, name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.startEchoes(t, ctx, name)
	}},
	{"link down", func(t testing.TB, s *site, name string) {
		if err := s.hosts[name].SetLink("eth1", false); err != nil {
			t.Fatal(err)
		}
	}, func(t testing.TB, s *site, name string) {
		if err := s.hosts[name].SetLink("eth1", true); err != nil {
			t.Fatal(err)
		}
	}},
}

func killEchoes(t testing.TB, s *site, name string) {
	t.Helper()
	for _, p := range s.echoes[name] {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
	}
}

// TestServerFailure kills srv3 (its stand-ins with SIGKILL, or its link):
// new flows through the Relay address reach the owners among the two live
// servers within seconds, flows and TCP sessions on the live servers are
// untouched, UDP flows of srv3 are placed again on a live server; once srv3
// is back, new flows reach it again. Then the same for Relays with a UDP
// listener only: without a TCP port the relay has only the passive check
// (ICMP port unreachable for a dead process); with backend.healthCheckPort
// the active check finds a host gone silent. (A UDP-only backend without a
// health check port whose host goes silent is not noticed by the relay:
// relay/doc.go, Health.)
func TestServerFailure(t *testing.T) {
	s := up(t)
	cl := s.env.Site.Client
	src := &ports{next: 20000}
	live := []string{"srv1", "srv2"}
	udpOnly := s.createRelay(t, udpOnlyRelay("calls-udp", udpOnlyPort, 0))[0]
	udpChecked := s.createRelay(t, udpOnlyRelay("calls-udp-hc", udpOnlyPort+1, backendTCP))[0]
	cases := []struct {
		name     string
		dst      netip.AddrPort
		tcp      bool
		fail     failure
		deadline time.Duration
	}{
		{"TCP and UDP listeners, " + failures[0].name, netip.AddrPortFrom(s.calls[0], 16384), true, failures[0], 5 * time.Second},
		{"TCP and UDP listeners, " + failures[1].name, netip.AddrPortFrom(s.calls[0], 16384), true, failures[1], 5 * time.Second},
		{"UDP only, " + failures[0].name, netip.AddrPortFrom(udpOnly, udpOnlyPort), false, failures[0], 5 * time.Second},
		{"UDP only with a health check port, " + failures[1].name, netip.AddrPortFrom(udpChecked, udpOnlyPort+1), false, failures[1], 5 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			flows := openFlows(t, cl, src, c.dst, 60, servers...)
			var sessions []*session
			if c.tcp {
				sessions = openSessions(t, cl, netip.AddrPortFrom(c.dst.Addr(), 8443), 12, servers...)
			}
			c.fail.kill(t, s, "srv3")
			restored := false
			defer func() {
				if !restored {
					c.fail.restore(t, s, "srv3")
				}
			}()
			took := waitNewFlows(t, cl, src, c.dst, c.deadline, live...)
			t.Logf("new flows reach srv1/srv2 only %v after the kill", took.Round(time.Millisecond))
			checkSurvivors(t, flows, sessions, c.dst, live)
			c.fail.restore(t, s, "srv3")
			restored = true
			took = waitNewFlows(t, cl, src, c.dst, 30*time.Second, servers...)
			t.Logf("srv3 back: new flows reach it again %v after", took.Round(time.Millisecond))
		})
	}
}

// checkSurvivors: flows and sessions on live servers answer from their
// server; flows of a dead server answer from their owner among live.
func checkSurvivors(t *testing.T, flows []placed, sessions []*session, dst netip.AddrPort, live []string) {
	t.Helper()
	for _, f := range flows {
		w := f.mustAsk(t, dst, "after the kill")
		want := f.server
		if !slices.Contains(live, f.server) {
			want = owner(t, f.src, live...)
		}
		if w.Name != want {
			t.Errorf("flow %s placed on %s now reaches %s, want %s", f.src, f.server, w.Name, want)
		}
	}
	for _, ss := range sessions {
		if slices.Contains(live, ss.server) {
			if err := ss.alive(); err != nil {
				t.Error(err)
			}
		}
	}
}
