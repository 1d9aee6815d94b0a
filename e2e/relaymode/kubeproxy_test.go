package relaymode

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
	"github.com/pier-lb/pier/relay"
)

// Relay "calls-np": exposure NodePort, PROXY v2 towards the backends (so
// they report the client address the relay saw), listeners on their own
// ports with fixed NodePorts.
const (
	npListenTCP = 8445
	npListenUDP = 16386
	npNodeTCP   = 30445
	npNodeUDP   = 31386
)

func callsNPRelay() *v1alpha1.Relay {
	return &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "calls-np"},
		Spec: v1alpha1.RelaySpec{
			Listeners: []v1alpha1.RelayListener{
				{Name: "np-tcp", Protocol: corev1.ProtocolTCP, Port: npListenTCP, TargetPort: proxyTCP, NodePort: npNodeTCP},
				{Name: "np-udp", Protocol: corev1.ProtocolUDP, Port: npListenUDP, TargetPort: proxyUDP, NodePort: npNodeUDP},
			},
			Backend:  v1alpha1.RelayBackend{ServiceName: backendSvc, ProxyProtocol: true},
			Exposure: v1alpha1.RelayExposure{Type: v1alpha1.ExposeNodePort},
		},
	}
}

// TestKubeProxy runs the relays as in a real cluster: kube-proxy
// (nftables) on every node and speakers without --local-vip, so a Relay's
// address is announced but not on any node, and kube-proxy translates it
// (and a NodePort) to the node's own relay (externalTrafficPolicy Local).
func TestKubeProxy(t *testing.T) {
	prereq.Tools(t, "nft")
	if _, err := kubelab.KubeProxyBinary(""); err != nil {
		prereq.Missing(t, "%v", err)
	}
	s := upWith(t, kubelab.Options{KubeProxy: true, SpeakerArgs: []string{"--metrics-addr", "0"}})
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range s.env.KubeProxies {
				t.Logf("kube-proxy node%d output (tail):\n%s", i+1, p.OutputTail(20))
			}
		}
	})
	cl := s.env.Site.Client
	src := &ports{next: 25000}

	// (a) NodePort exposure: every node's address at the NodePorts reaches
	// its own relay, the flow its Maglev owner, and the same client port
	// the same server through two nodes. kube-proxy does not masquerade
	// (externalTrafficPolicy Local): the relay sees, and PROXY v2 passes
	// on, the client's own address and port.
	t.Run("NodePort exposure", func(t *testing.T) {
		tcpPort, udpPort := s.createNodePortRelay(t, callsNPRelay())
		for n := range s.env.Site.Nodes {
			dst := netip.AddrPortFrom(nodeAddr(n), tcpPort)
			w, local := mustTCP(t, cl, dst)
			if want := owner(t, local, servers...); w.Name != want || w.Client != local {
				t.Errorf("tcp %s from %s: %s saw %s, want the Maglev owner %s seeing the client", dst, local, w.Name, w.Client, want)
			}
		}
		cv4, _ := clientAddrs()
		seen := map[string]int{}
		for range 100 {
			f := newFlow(t, cl, netip.AddrPortFrom(cv4, src.take()))
			want := owner(t, f.src, servers...)
			for _, n := range []int{0, 1} {
				w := f.mustAsk(t, netip.AddrPortFrom(nodeAddr(n), udpPort), "nodeport")
				if w.Name != want || w.Client != f.src {
					t.Fatalf("udp %s through node%d:%d: %s saw %s, want the Maglev owner %s seeing the client", f.src, n+1, udpPort, w.Name, w.Client, want)
				}
			}
			seen[want]++
			f.pc.Close()
		}
		t.Logf("NodePorts %d/TCP, %d/UDP: 100 client ports through node1 and node2 agree: %v", tcpPort, udpPort, seen)
		if len(seen) != len(servers) {
			t.Errorf("flows reached %v, want every server", seen)
		}
	})

	// (b) LoadBalancer exposure: the Relay address is on no node; the
	// speaker announces it, kube-proxy on the owner translates it to that
	// node's relay.
	t.Run("LoadBalancer through kube-proxy", func(t *testing.T) {
		o := s.ownerNode(t, s.calls[0])
		s.checkNotLocal(t, o, s.calls...)
		for _, a := range s.calls {
			w, local := mustTCP(t, cl, netip.AddrPortFrom(a, 8443))
			if want := owner(t, local, servers...); w.Name != want {
				t.Errorf("tcp %s from %s: reached %s, want the Maglev owner %s", a, local, w.Name, want)
			}
			if w.Client.Addr() != nodeAddr(o) && w.Client.Addr() != nodeAddr6(o) {
				t.Errorf("tcp %s: the backend saw %s, want the owner node%d's relay", a, w.Client, o+1)
			}
		}
		flows := openFlows(t, cl, src, netip.AddrPortFrom(s.calls[0], 16384), 100, servers...)
		_, cv6 := clientAddrs()
		if len(s.calls) > 1 {
			f := newFlow(t, cl, netip.AddrPortFrom(cv6, 0))
			if w, want := f.mustAsk(t, netip.AddrPortFrom(s.calls[1], 16384), "v6"), owner(t, f.src, servers...); w.Name != want {
				t.Errorf("udp %s from %s: reached %s, want the Maglev owner %s", s.calls[1], f.src, w.Name, want)
			}
		}
		pp := s.callsPP[0]
		if w, local := mustTCP(t, cl, netip.AddrPortFrom(pp, ppListenTCP)); w.Client != local {
			t.Errorf("PROXY v2 through %s: backend %s saw client %s, want %s", pp, w.Name, w.Client, local)
		}
		t.Logf("owner node%d (%s not on it): 100 UDP flows through %s: %v; TCP and IPv6 reach their owners, PROXY v2 carries the client", o+1, s.calls[0], s.calls[0], count(flows))
	})

	// (b2) A call through the Relay address while the owner node's relay
	// is replaced (stopped, which releases its Leases, and started again),
	// as a rolling upgrade of the relays does: the call is answered again
	// once the relay is back, on its server.
	t.Run("call across the owner's relay restart", func(t *testing.T) {
		vip := netip.AddrPortFrom(s.calls[0], 16384)
		o := s.ownerNode(t, vip.Addr())
		c := startCall(t, cl, vip)
		defer c.stop()
		start := time.Now()
		c.waitReplies(t, start, 25, 30*time.Second)
		stopped := time.Now()
		must(t, s.relays[o].Stop())
		c.waitReplies(t, stopped, 25, 30*time.Second)
		t.Logf("owner node%d's relay stopped: the call went on through node%d", o+1, s.ownerNode(t, vip.Addr())+1)
		back := time.Now()
		s.startRelay(t, o)
		s.waitLeases(t, "calls", len(s.env.Site.Nodes))
		time.Sleep(3 * time.Second) // ownership returns to node o
		replied := time.Now()
		c.waitReplies(t, replied, 50, 30*time.Second)
		t.Logf("relay back on node%d after %v; owner now node%d; longest gap %v", o+1, back.Sub(stopped).Round(time.Millisecond),
			s.ownerNode(t, vip.Addr())+1, c.gap(start).Round(time.Millisecond))
		for _, r := range c.since(start) {
			if r.server != c.since(start)[0].server {
				t.Fatalf("call moved from %s to %s", c.since(start)[0].server, r.server)
			}
		}
	})

	// (c) dataPath Kernel behind kube-proxy: flows still reach their
	// owners, UDP and TCP, and the kernel path carried every UDP flow: the
	// Relay address is on no node, so only the kernel path's match on the
	// Relay's addresses (its chain at dstnat - 5, before kube-proxy's
	// DNAT at dstnat) keeps kube-proxy from handing them to the relay's
	// socket.
	t.Run("dataPath Kernel behind kube-proxy", func(t *testing.T) {
		s.useKernelPath(t)
		vip := netip.AddrPortFrom(s.calls[0], 16384)
		o := s.ownerNode(t, vip.Addr())
		userBefore, kernelBefore := s.userspaceUDPIn(t), s.kernelIn(t)
		flows := openFlows(t, cl, src, vip, 100, servers...)
		if w, local := mustTCP(t, cl, netip.AddrPortFrom(vip.Addr(), 8443)); w.Name != owner(t, local, servers...) {
			t.Errorf("tcp %s from %s: reached %s, want the Maglev owner %s", vip.Addr(), local, w.Name, owner(t, local, servers...))
		}
		ct := s.kernelFlows(t, o, vip)
		carried := 0
		for _, f := range flows {
			if ct[f.src] == serverAddr(t, f.server) {
				carried++
			}
		}
		kernelIn, userIn := s.kernelIn(t)-kernelBefore, s.userspaceUDPIn(t)-userBefore
		t.Logf("owner node%d: %d of 100 flows through %s in conntrack with mark %#x (translated by the kernel path); pier_relay_kernel_packets_total in +%v, relays' UDP in +%v; flows by server %v",
			o+1, carried, vip, relay.DefaultKernelCtMark, kernelIn, userIn, count(flows))
		if carried != 100 || userIn != 0 {
			t.Errorf("behind kube-proxy the kernel path carried %d of 100 flows to the Relay address (relays' own UDP in +%v), want all", carried, userIn)
		}
		t.Logf("node%d netfilter base chains:\n%s", o+1, s.baseChains(t, o))
	})
}

// createNodePortRelay creates r (exposure NodePort), waits until every
// node's relay serves it and pier-controller lists them all in its
// Service's EndpointSlices, and returns the Service's TCP and UDP
// NodePorts, checked against r's listeners.
func (s *site) createNodePortRelay(t *testing.T, r *v1alpha1.Relay) (tcp, udp uint16) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, s.env.Pier.Create(ctx, r))
	s.waitLeases(t, r.Name, len(s.env.Site.Nodes))
	s.waitRelayEndpoints(t, r.Name, len(s.env.Site.Nodes))
	var svc corev1.Service
	must(t, s.env.Pier.Get(ctx, client.ObjectKey{Namespace: ns, Name: config.RelayServiceName(r.Name)}, &svc))
	if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service %s: type %s, externalTrafficPolicy %s, want NodePort and Local", svc.Name, svc.Spec.Type, svc.Spec.ExternalTrafficPolicy)
	}
	for _, p := range svc.Spec.Ports {
		for _, l := range r.Spec.Listeners {
			if l.Protocol == p.Protocol && l.Port == p.Port && l.NodePort != p.NodePort {
				t.Errorf("Service %s port %d/%s: NodePort %d, want %d", svc.Name, p.Port, p.Protocol, p.NodePort, l.NodePort)
			}
		}
		switch p.Protocol {
		case corev1.ProtocolTCP:
			tcp = uint16(p.NodePort)
		case corev1.ProtocolUDP:
			udp = uint16(p.NodePort)
		}
	}
	if tcp == 0 || udp == 0 {
		t.Fatalf("Service %s ports %+v: want a TCP and a UDP NodePort", svc.Name, svc.Spec.Ports)
	}
	return tcp, udp
}

// checkNotLocal fails t when one of addrs is on node i (speakers without
// --local-vip only announce).
func (s *site) checkNotLocal(t *testing.T, i int, addrs ...netip.Addr) {
	t.Helper()
	out, err := s.env.Site.Nodes[i].Run(context.Background(), "ip", "-brief", "addr")
	must(t, err)
	for _, a := range addrs {
		if strings.Contains(out, " "+a.String()+"/") {
			t.Errorf("node%d has the Relay address %s on an interface:\n%s", i+1, a, out)
		}
	}
}

// baseChains lists node i's nftables base chains (table, chain, hook and
// priority), one a line.
func (s *site) baseChains(t *testing.T, i int) string {
	t.Helper()
	out, err := s.env.Site.Nodes[i].Run(context.Background(), "nft", "list", "chains")
	must(t, err)
	var lines []string
	table, chain := "", ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "table "):
			table = strings.TrimSuffix(strings.TrimPrefix(l, "table "), " {")
		case strings.HasPrefix(l, "chain "):
			chain = strings.TrimSuffix(strings.TrimPrefix(l, "chain "), " {")
		case strings.HasPrefix(l, "type "):
			lines = append(lines, "  "+table+" "+chain+": "+strings.TrimSuffix(l, ";"))
		}
	}
	return strings.Join(lines, "\n")
}

// nodeAddr6 is node i's (0-based) IPv6 address on the segment.
func nodeAddr6(i int) netip.Addr { _, v6 := lab.NodeAddrs(i + 1); return v6.Addr() }
