package relaymode

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller/gatewayctl"
	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/relay"
)

// gatewayRelay is the Relay pier-controller owns for Gateway "edge".
var gatewayRelay = gatewayctl.RelayName("edge")

// gatewayObjects: a class whose parameters say dataPath Relay (flows
// placed by client address, so a caller's signalling and media reach one
// server), the backend Service "media" (its slice is the lab's), a
// Gateway "edge" with 8443/TCP and 16384/UDP listeners, and a TCPRoute
// and a UDPRoute to the servers' stand-ins.
func gatewayObjects() []client.Object {
	parent := gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}}
	ref := func(port int32) []gwv1.BackendRef {
		return []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{Name: backendSvc, Port: ptr.To(port)}}}
	}
	return []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: kubelab.PierNamespace, Name: "relay-path"},
			Data: map[string]string{"dataPath": "Relay", "routingKey": "ClientAddress"}},
		&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "pier-relay"}, Spec: gwv1.GatewayClassSpec{
			ControllerName: gatewayctl.ControllerName,
			ParametersRef: &gwv1.ParametersReference{Kind: "ConfigMap", Name: "relay-path",
				Namespace: ptr.To(gwv1.Namespace(kubelab.PierNamespace))}}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: backendSvc},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
				{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: backendTCP},
				{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: backendUDP},
			}},
		},
		&gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"}, Spec: gwv1.GatewaySpec{
			GatewayClassName: "pier-relay",
			Listeners: []gwv1.Listener{
				{Name: "signalling", Protocol: gwv1.TCPProtocolType, Port: 8443},
				{Name: "media", Protocol: gwv1.UDPProtocolType, Port: 16384},
			}}},
		&gwv1.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signalling"},
			Spec: gwv1.TCPRouteSpec{CommonRouteSpec: parent, Rules: []gwv1.TCPRouteRule{{BackendRefs: ref(backendTCP)}}}},
		&gwv1.UDPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "media"},
			Spec: gwv1.UDPRouteSpec{CommonRouteSpec: parent, Rules: []gwv1.UDPRouteRule{{BackendRefs: ref(backendUDP)}}}},
	}
}

// upGateway builds the lab with the Gateway API on, Gateway "edge" served
// by pier-relay on every node, and its address in s.calls.
func upGateway(t testing.TB) *site {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := upServers(t, ctx, kubelab.Options{GatewayAPI: true, SpeakerArgs: []string{"--local-vip", "--metrics-addr", "0"}})
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	gwv1.Install(scheme)
	c, err := client.New(s.env.Cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range gatewayObjects() {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
	lab.Poll(t, "Relay "+gatewayRelay+" created for Gateway edge", 100*time.Millisecond, time.Minute, func() error {
		return s.env.Pier.Get(ctx, client.ObjectKey{Namespace: ns, Name: gatewayRelay}, &v1alpha1.Relay{})
	})
	s.calls = s.relayAddrs(t, &v1alpha1.Relay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gatewayRelay}})
	for i := range s.env.Site.Nodes {
		s.startRelay(t, i)
	}
	s.waitLeases(t, gatewayRelay, len(s.env.Site.Nodes))
	s.waitStatus(t, gatewayRelay, int32(len(s.env.Site.Nodes)), int32(len(servers)))
	s.waitRelayEndpoints(t, gatewayRelay, len(s.env.Site.Nodes))
	lab.Poll(t, "Gateway edge programmed with the Relay's address", 100*time.Millisecond, time.Minute, func() error {
		var gw gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "edge"}, &gw); err != nil {
			return err
		}
		if !apimeta.IsStatusConditionTrue(gw.Status.Conditions, "Programmed") {
			return fmt.Errorf("not programmed: %+v", gw.Status.Conditions)
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != s.calls[0].String() {
			return fmt.Errorf("addresses %+v, want %s", gw.Status.Addresses, s.calls[0])
		}
		return nil
	})
	s.settledOwner(t, s.calls[0])
	return s
}

// gatewayOwner is the server every relay must pick for a new flow of
// client on the Gateway: the Maglev owner of its address (routing key
// ClientAddress) among the servers' addresses (the names the relays give
// the endpoints of the Gateway's slices), on both listeners (equal
// weights).
func gatewayOwner(t testing.TB, client netip.Addr) string {
	t.Helper()
	byAddr := map[string]string{}
	var names []string
	for i, name := range servers {
		a := kubelab.BackendAddr(i + 1).Addr().String()
		byAddr[a] = name
		names = append(names, a)
	}
	tab, err := relay.NewTable(names, 0)
	if err != nil {
		t.Fatal(err)
	}
	return byAddr[tab.Lookup(relay.HashKey(netip.AddrPortFrom(client, 0), true))]
}

// TestGatewayCallThroughOwnerFailure is the calling case through the
// Gateway API: Gateway "edge" (8443/TCP signalling, 16384/UDP media) of a
// class served by pier-relay. A call (a TCP connection and a UDP stream
// at 50 packets/s from one client) reaches one server; the node owning
// the Gateway's address dies (speaker and relay SIGKILLed, link down).
// The media stream goes on through the new owner to the same server, and
// the signalling, whose TCP connection ended with the relay that carried
// it, reconnects to the same server: every relay places the client's
// flows by Maglev over the same backends.
func TestGatewayCallThroughOwnerFailure(t *testing.T) {
	s := upGateway(t)
	addr := s.calls[0]
	cl := s.env.Site.Client
	want := gatewayOwner(t, clientLike(addr))
	sig := netip.AddrPortFrom(addr, 8443)

	held, err := cl.Dial(context.Background(), "tcp", sig.String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_ = held.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(held).ReadString('\n')
	if err != nil {
		t.Fatalf("signalling through %s: %v", sig, err)
	}
	before, err := echo.ParseWhoami(line)
	if err != nil {
		t.Fatal(err)
	}
	if before.Name != want {
		t.Errorf("signalling reached %s, want %s (the Maglev owner of the client's address)", before.Name, want)
	}

	gap, old, next, c := s.callFailover(t)
	seen := map[string]int{}
	for _, r := range c.since(time.Time{}) {
		seen[r.server]++
	}
	if len(seen) != 1 || seen[want] == 0 {
		t.Errorf("media replies by server %v, want all from %s", seen, want)
	}
	_ = held.SetDeadline(time.Now().Add(2 * time.Second))
	_, werr := io.WriteString(held, "after")
	_, rerr := io.ReadFull(held, make([]byte, 5))
	t.Logf("the signalling connection through node%d after its death: write %v, read %v", old+1, werr, rerr)
	after, _ := mustTCP(t, cl, sig)
	if after.Name != want {
		t.Errorf("signalling reconnected to %s, want %s", after.Name, want)
	}
	t.Logf("call from %s on %s: node%d killed, media resumed through node%d after a gap of %v (%d sent, %d replies), signalling reconnected to %s",
		c.f.src.Addr(), want, old+1, next+1, gap.Round(time.Millisecond), c.sent, len(c.since(time.Time{})), after.Name)
}
