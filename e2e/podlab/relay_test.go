package podlab_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/podlab"
)

// relayTraffic is a call (UDP 50/s) and its signalling session (TCP)
// through a Relay address, from the lab's client.
type relayTraffic struct {
	call    *podlab.Call
	session *podlab.Session
}

func startRelayTraffic(t testing.TB, e *podlab.Env, addr netip.Addr) *relayTraffic {
	t.Helper()
	call, err := podlab.StartCall(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		t.Fatal(err)
	}
	r := &relayTraffic{call: call, session: podlab.StartSession(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallTCPPort))}
	t.Cleanup(func() { r.call.Stop(); r.session.Stop() })
	r.waitAnswered(t)
	return r
}

// waitAnswered waits for 10 more replies to the call and 10 more echoes
// in the session.
func (r *relayTraffic) waitAnswered(t testing.TB) {
	t.Helper()
	calls, echoes := r.call.Answered()+10, r.session.Echoes()+10
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return r.call.Answered() >= calls && r.session.Echoes() >= echoes, nil
	})
	if err != nil {
		t.Fatalf("relay traffic not answered: call %v; session %v", r.call.Stats(time.Now()), r.session.Stats(time.Now()))
	}
}

// check waits until both are answered again, stops them and checks that
// one server took the whole call (the relays' Maglev choice for its
// source does not change when a relay restarts) and that the servers saw
// the client's own address and port (PROXY v2). A session that connects
// again comes from another port, which Maglev may place elsewhere.
func (r *relayTraffic) check(t testing.TB) (podlab.CallStats, podlab.SessionStats) {
	t.Helper()
	r.waitAnswered(t)
	client, _ := lab.ClientAddrs()
	port := r.call.Port()
	cs, ss := r.call.Stop(), r.session.Stop()
	t.Logf("relay call: %v", cs)
	t.Logf("relay session: %v", ss)
	if len(cs.Servers) != 1 {
		t.Errorf("relay call answered by servers %v, want one", cs.Servers)
	}
	if want := netip.AddrPortFrom(client.Addr(), port); len(cs.Clients) != 1 || cs.Clients[0] != want {
		t.Errorf("relay call: servers saw clients %v, want %s (PROXY v2)", cs.Clients, want)
	}
	for _, c := range ss.Conns {
		if c.Client != c.Local {
			t.Errorf("relay session: server %s saw client %s, the client is %s (PROXY v2)", c.Server, c.Client, c.Local)
		}
	}
	return cs, ss
}

// relayShowsClient: once a node answers for the Relay's address, a call
// and a session through it reach one backend Pod each, which sees the
// client's address and port, and the session is never broken.
func relayShowsClient(t *testing.T, e *podlab.Env, addr netip.Addr) {
	node, mac, err := e.WhoAnswers(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Relay address %s answered by %s (%s)", addr, node, mac)
	_, ss := startRelayTraffic(t, e, addr).check(t)
	if len(ss.Lost)+ss.FailedDials > 0 || len(ss.Conns) != 1 {
		t.Errorf("relay session: %v, want one connection never lost", ss)
	}
}
