package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
)

// The demo's calling service: namespace voice, backend Service media whose
// EndpointSlice lists two calling-server stand-ins (srv1 and srv2 on the
// L2 segment, `pier-lab echo -name`), and a Relay "calls" in front of them.
const (
	relayNS      = "voice"
	mediaTCPPort = 9443
	mediaUDPPort = 9384
)

// demoRelay runs pier-relay (relayBin) on every node, creates the calling
// service and its Relay, sends a call-like UDP stream and a TCP session
// through the Relay's address from the client and prints which server
// answered them.
func demoRelay(ctx context.Context, env *kubelab.Env, relayBin string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := startMedia(ctx, env, self); err != nil {
		return err
	}
	for i := range env.Site.Nodes {
		if _, err := env.StartRelay(ctx, i, relayBin); err != nil {
			return err
		}
	}
	r := &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: relayNS, Name: "calls"},
		Spec:       v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "media"}},
	}
	if err := env.Pier.Create(ctx, r); err != nil {
		return fmt.Errorf("create relay: %w", err)
	}
	addr, err := relayReady(ctx, env, r)
	if err != nil {
		return err
	}
	fmt.Printf("Relay voice/calls (8443/TCP, 16384/UDP, the defaults) got %s; pier-relay runs on every node and takes each\n"+
		"flow to the server Maglev picks among the ready endpoints of Service voice/media (srv1 %s, srv2 %s).\n",
		addr, kubelab.BackendAddr(1).Addr(), kubelab.BackendAddr(2).Addr())
	if err := demoCall(ctx, env.Site.Client, netip.AddrPortFrom(addr, 16384)); err != nil {
		return err
	}
	if err := demoSession(ctx, env.Site.Client, netip.AddrPortFrom(addr, 8443)); err != nil {
		return err
	}
	kubectl := filepath.Join(cluster.DefaultBinDir(), "kubectl")
	fmt.Printf("Try:\n  %s --kubeconfig %s get relays,endpointslices -n %s\n", kubectl, env.Cluster.Kubeconfig, relayNS)
	fmt.Printf("  ip netns exec %s socat - UDP:%s:16384   (type lines: each is answered by the call's server)\n", env.Site.Client.NS, addr)
	fmt.Printf("  ip netns exec %s socat - TCP:%s:8443\n", env.Site.Client.NS, addr)
	fmt.Printf("  ip netns exec %s curl -s 127.0.0.1:%d/metrics | grep pier_relay_\n\n", env.Site.Nodes[0].NS, kubelab.RelayMetricsPort)
	return nil
}

// startMedia adds the backend hosts with their stand-ins, the namespace,
// the headless Service media and its EndpointSlice (the lab has no
// endpoints controller).
func startMedia(ctx context.Context, env *kubelab.Env, echoBin string) error {
	if err := env.Pier.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: relayNS}}); err != nil {
		return fmt.Errorf("create namespace %s: %w", relayNS, err)
	}
	ports := []corev1.ServicePort{
		{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: mediaTCPPort},
		{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: mediaUDPPort},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: relayNS, Name: "media"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: ports},
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: relayNS, Name: "media-demo", Labels: map[string]string{
			discoveryv1.LabelServiceName: "media", discoveryv1.LabelManagedBy: "pier-lab-demo",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Protocol: ptr.To(p.Protocol), Port: ptr.To(p.Port)})
	}
	for i := 1; i <= 2; i++ {
		h, err := env.AddBackendHost(i)
		if err != nil {
			return err
		}
		if _, err := kubelab.StartBackend(ctx, h, echoBin, h.Name, fmt.Sprintf(":%d", mediaTCPPort), fmt.Sprintf(":%d", mediaUDPPort), false); err != nil {
			return err
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{kubelab.BackendAddr(i).Addr().String()}, Hostname: ptr.To(h.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	for _, o := range []client.Object{svc, es} {
		if err := env.Pier.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// relayReady waits until the Relay has an address and every node's relay
// serves it with both backends.
func relayReady(ctx context.Context, env *kubelab.Env, r *v1alpha1.Relay) (netip.Addr, error) {
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		st := r.Status
		if len(st.Addresses) == 0 || st.ReadyRelays != int32(len(env.Site.Nodes)) || st.ReadyBackends != 2 {
			return false, nil
		}
		var err error
		addr, err = netip.ParseAddr(st.Addresses[0])
		return err == nil, err
	})
	if err != nil {
		return addr, fmt.Errorf("relay %s/%s not ready: status %+v: %w", r.Namespace, r.Name, r.Status, err)
	}
	return addr, nil
}

// demoCall sends 50 datagrams at 50 per second from one client port (a
// second of a call's media) and prints who answered.
func demoCall(ctx context.Context, h *lab.Host, dst netip.AddrPort) error {
	cv4, _ := lab.ClientAddrs()
	pc, err := h.ListenPacket("udp4", netip.AddrPortFrom(cv4.Addr(), 0).String())
	if err != nil {
		return err
	}
	defer pc.Close()
	got := map[string]int{}
	var via netip.Addr
	// The first datagrams may go while the router learns the address's
	// owner: a call's media would just go on; the demo waits for a reply.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := askUDP(pc, dst, "hello")
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("no answer from %s", dst)
	}
	answered := 0
	for seq := range 50 {
		time.Sleep(20 * time.Millisecond)
		w, err := askUDP(pc, dst, fmt.Sprintf("rtp-%d", seq))
		if err != nil {
			continue
		}
		answered++
		got[w.Name]++
		via = w.Client.Addr()
	}
	fmt.Printf("A call's UDP stream from %s to %s, 50 datagrams at 50/s: %d answered, by %s (relayed by the node at %s).\n",
		pc.LocalAddr(), dst, answered, servers(got), via)
	return nil
}

// askUDP sends payload and reads the server's answer within 500 ms.
func askUDP(pc net.PacketConn, dst netip.AddrPort, payload string) (echo.Whoami, error) {
	if _, err := pc.WriteTo([]byte(payload), net.UDPAddrFromAddrPort(dst)); err != nil {
		return echo.Whoami{}, err
	}
	_ = pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return echo.Whoami{}, err
	}
	return echo.ParseWhoami(string(buf[:n]))
}

func servers(got map[string]int) string {
	var parts []string
	for name, n := range got {
		parts = append(parts, fmt.Sprintf("%s (%d)", name, n))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, ", ")
}

// demoSession opens a TCP session through dst, exchanges a line and prints
// who answered.
func demoSession(ctx context.Context, h *lab.Host, dst netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("tcp %s: %w", dst, err)
	}
	w, err := echo.ParseWhoami(line)
	if err != nil {
		return err
	}
	const msg = "INVITE sip:demo@pier.lab SIP/2.0\r\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(r, back); err != nil {
		return fmt.Errorf("tcp %s: echo: %w", dst, err)
	}
	fmt.Printf("A TCP session from %s to %s: answered by %s (relayed by the node at %s), %d bytes echoed.\n",
		c.LocalAddr(), dst, w.Name, w.Client.Addr(), len(back))
	return nil
}
