package relaymode

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/relay"
)

// owner is the server Maglev gives client among servers: what every relay
// must pick for a new flow (computed with the relay package's own table,
// over the names the relays derive from the EndpointSlice).
func owner(t testing.TB, client netip.AddrPort, servers ...string) string {
	t.Helper()
	tab, err := relay.NewTable(servers, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tab.Lookup(relay.HashKey(client, false))
}

// ports hands out client source ports below the ephemeral range, so that
// every flow a test makes is new to the relays.
type ports struct{ next uint16 }

func (p *ports) take() uint16 { p.next++; return p.next }

func nodeAddr(i int) netip.Addr { v4, _ := lab.NodeAddrs(i + 1); return v4.Addr() }

func TestRelay(t *testing.T) {
	s := up(t)
	cl := s.env.Site.Client
	cv4, _ := clientAddrs()
	src := &ports{next: 20000}

	// (1) Client behind the router -> the Relay's announced address -> the
	// relay on the node that owns it -> a backend, TCP and UDP, IPv4 and
	// IPv6; a flow stays on its server, the Maglev owner of its client
	// address and port.
	t.Run("through the Relay address", func(t *testing.T) {
		if len(s.calls) < 2 {
			t.Errorf("relay calls got %v, want an IPv4 and an IPv6 address", s.calls)
		}
		relayNodes := []netip.Addr{nodeAddr(0), nodeAddr(1), nodeAddr(2)}
		for _, a := range s.calls {
			w, local := mustTCP(t, cl, netip.AddrPortFrom(a, 8443))
			if want := owner(t, local, servers...); w.Name != want {
				t.Errorf("tcp %s from %s: reached %s, want the Maglev owner %s", a, local, w.Name, want)
			}
			if !slices.Contains(relayNodes, w.Client.Addr()) {
				t.Errorf("tcp %s: the backend saw %s, want a relay node's address", a, w.Client)
			}
			f := newFlow(t, cl, netip.AddrPortFrom(clientLike(a), 0))
			first := f.mustAsk(t, netip.AddrPortFrom(a, 16384), "hello")
			if want := owner(t, f.src, servers...); first.Name != want {
				t.Errorf("udp %s from %s: reached %s, want the Maglev owner %s", a, f.src, first.Name, want)
			}
			for i := range 10 {
				if w := f.mustAsk(t, netip.AddrPortFrom(a, 16384), strings.Repeat("m", i+1)); w.Name != first.Name {
					t.Fatalf("udp %s from %s: datagram %d reached %s, the flow was on %s", a, f.src, i, w.Name, first.Name)
				}
			}
			t.Logf("%s: tcp from %s -> %s, udp from %s -> %s", a, local, w.Name, f.src, first.Name)
		}
	})

	// (2) Maglev agreement: relays on two nodes, reached on the nodes' own
	// addresses, pick the same server for each of 200 client ports.
	t.Run("Maglev agreement between nodes", func(t *testing.T) {
		seen := map[string]int{}
		for range 200 {
			f := newFlow(t, cl, netip.AddrPortFrom(cv4, src.take()))
			want := owner(t, f.src, servers...)
			for _, n := range []int{0, 1} {
				w := f.mustAsk(t, netip.AddrPortFrom(nodeAddr(n), 16384), "agree?")
				if w.Name != want {
					t.Fatalf("client %s: node%d's relay picked %s, want %s (the Maglev owner)", f.src, n+1, w.Name, want)
				}
			}
			seen[want]++
			f.pc.Close()
		}
		t.Logf("200 client ports, both relays agree on every one: %v", seen)
		if len(seen) != len(servers) {
			t.Errorf("flows reached %v, want every server", seen)
		}
	})

	// (3) PROXY v2 towards the backends: they see the client's real address.
	t.Run("PROXY v2 carries the client address", func(t *testing.T) {
		a := s.callsPP[0]
		w, local := mustTCP(t, cl, netip.AddrPortFrom(a, ppListenTCP))
		if w.Client != local {
			t.Errorf("tcp: backend %s saw client %s, want %s", w.Name, w.Client, local)
		}
		f := newFlow(t, cl, netip.AddrPortFrom(cv4, 0))
		if u := f.mustAsk(t, netip.AddrPortFrom(a, ppListenUDP), "who am i"); u.Client != f.src {
			t.Errorf("udp: backend %s saw client %s, want %s", u.Name, u.Client, f.src)
		}
	})

	// (4) Direct mode beside the relay: a client reaches a calling server on
	// the server's own address.
	t.Run("direct mode", func(t *testing.T) {
		for i, name := range servers {
			a := kubelab.BackendAddr(i + 1).Addr()
			w, local := mustTCP(t, cl, netip.AddrPortFrom(a, backendTCP))
			if w.Name != name || w.Client != local {
				t.Errorf("tcp direct to %s: %+v, want %s seeing %s", a, w, name, local)
			}
			f := newFlow(t, cl, netip.AddrPortFrom(cv4, 0))
			if u := f.mustAsk(t, netip.AddrPortFrom(a, backendUDP), "direct"); u.Name != name || u.Client != f.src {
				t.Errorf("udp direct to %s: %+v, want %s seeing %s", a, u, name, f.src)
			}
		}
	})

	t.Run("metrics per Relay", func(t *testing.T) {
		m := scrape(t, s.env.Site.Nodes[0], "127.0.0.1:7474")
		for _, want := range []string{
			`pier_relay_packets_total{direction="in",proto="udp",relay="voice/calls"}`,
			`pier_relay_backend_up{backend="srv1",relay="voice/calls-pp"} 1`,
			`pier_relay_agent_served_relays 2`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("node1's relay metrics lack %s", want)
			}
		}
	})

	// A listener change replaces the relays (the new port answers, the old
	// one no longer does); a node selector that leaves a node out stops its
	// relay and removes its Lease.
	t.Run("Relay spec changes", func(t *testing.T) {
		r := callsPPRelay()
		if err := s.env.Pier.Get(context.Background(), client.ObjectKeyFromObject(r), r); err != nil {
			t.Fatal(err)
		}
		r.Spec.Listeners[1].Port = ppListenUDP + 1
		r.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpNotIn, Values: []string{s.env.Site.Nodes[2].Name}},
		}}
		if err := s.env.Pier.Update(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		s.waitLeases(t, "calls-pp", 2)
		if _, held := s.leases(t, "calls-pp")[s.env.Site.Nodes[2].Name]; held {
			t.Errorf("node3 left out by the node selector still holds a Lease")
		}
		f := newFlow(t, cl, netip.AddrPortFrom(cv4, 0))
		if w := f.mustAsk(t, netip.AddrPortFrom(nodeAddr(0), ppListenUDP+1), "moved"); w.Client != f.src {
			t.Errorf("new port: backend %s saw %s, want %s", w.Name, w.Client, f.src)
		}
		for _, dst := range []netip.AddrPort{
			netip.AddrPortFrom(nodeAddr(0), ppListenUDP),   // the old port
			netip.AddrPortFrom(nodeAddr(2), ppListenUDP+1), // a node left out
		} {
			err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
				_, err := f.ask(dst, "anyone?", 2)
				return err != nil, nil
			})
			if err != nil {
				t.Errorf("%s still answers", dst)
			}
		}
	})

	// (5) A server whose endpoint turns not ready, or is removed, takes no
	// new flows (flows already on it stay); a restarted relay reads the
	// current endpoints and serves again.
	t.Run("endpoint changes and a relay restart", func(t *testing.T) {
		dst := netip.AddrPortFrom(s.calls[0], 16384)
		var onSrv2 *udpFlow
		for onSrv2 == nil {
			f := newFlow(t, cl, netip.AddrPortFrom(cv4, src.take()))
			if owner(t, f.src, servers...) == "srv2" {
				onSrv2 = f
			}
		}
		if w := onSrv2.mustAsk(t, dst, "before"); w.Name != "srv2" {
			t.Fatalf("flow %s reached %s, want srv2", onSrv2.src, w.Name)
		}

		s.writeEndpoints(t, map[string]bool{"srv1": true, "srv2": false, "srv3": true})
		newFlowsReach(t, cl, src, dst, "srv1", "srv3")
		if w := onSrv2.mustAsk(t, dst, "still there?"); w.Name != "srv2" {
			t.Errorf("the flow placed on srv2 moved to %s when srv2 turned not ready", w.Name)
		}

		s.writeEndpoints(t, map[string]bool{"srv1": true, "srv2": false})
		newFlowsReach(t, cl, src, dst, "srv1")

		node, _, err := s.env.WhoAnswers(context.Background(), s.calls[0])
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(s.env.Site.Nodes, func(h *lab.Host) bool { return h.Name == node })
		if err := s.relays[i].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.relays[i].Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("relay on %s did not stop after SIGTERM", node)
		}
		if _, held := s.leases(t, "calls")[node]; held {
			t.Errorf("the relay on %s stopped but its Lease for calls is still there", node)
		}
		s.waitStatus(t, "calls", int32(len(s.env.Site.Nodes)-1), 1)
		s.startRelay(t, i)
		s.waitLeases(t, "calls", len(s.env.Site.Nodes))
		s.waitStatus(t, "calls", int32(len(s.env.Site.Nodes)), 1)
		newFlowsReach(t, cl, src, dst, "srv1")

		s.writeEndpoints(t, map[string]bool{"srv1": true, "srv2": true, "srv3": true})
		newFlowsReach(t, cl, src, dst, servers...)
	})
}

// newFlowsReach waits until 30 new flows to dst in a row each reach their
// Maglev owner among servers (the relays have taken the endpoint change).
func newFlowsReach(t *testing.T, h *lab.Host, src *ports, dst netip.AddrPort, servers ...string) {
	t.Helper()
	cv4, _ := clientAddrs()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for range 30 {
			f := newFlow(t, h, netip.AddrPortFrom(cv4, src.take()))
			w, err := f.ask(dst, "new flow", 10)
			f.pc.Close()
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if want := owner(t, f.src, servers...); w.Name != want {
				last = f.src.String() + " reached " + w.Name + ", want " + want
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("new flows to %s never all reached their owner among %v: %s", dst, servers, last)
	}
}

// clientLike is the client's address of a's family.
func clientLike(a netip.Addr) netip.Addr {
	v4, v6 := clientAddrs()
	if a.Is4() {
		return v4
	}
	return v6
}
