package l2mode

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/controller/gatewayctl"
	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// gatewayAddr is the Gateway's requested address, from the lab's L2 pool.
var gatewayAddr = netip.MustParseAddr("198.51.100.230")

// TestGatewayThroughKubeProxy serves a Gateway end to end with the real
// binaries: pier-controller --gateway-api gives the Gateway its address
// through a Service, the speakers announce it by ARP (without --local-vip:
// the address is on no node), and kube-proxy (nftables) on the owner
// node forwards the TCP and UDP listeners to the routes' backend, an echo
// server on its own host with other ports, from a client behind the
// router.
func TestGatewayThroughKubeProxy(t *testing.T) {
	prereq.Tools(t, "nft")
	if _, err := kubelab.KubeProxyBinary(""); err != nil {
		prereq.Missing(t, "%v", err)
	}
	env := up(t, kubelab.Options{Nodes: 2, KubeProxy: true, GatewayAPI: true, SpeakerArgs: []string{"--metrics-addr", "0"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, n := range env.Site.Nodes { // the owner node forwards to the backend host
		if err := n.EnableForwarding(); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := env.AddBackendHost(1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := srv.Start(binary(t, "pier-lab"), "echo", "-tcp", ":15061", "-udp", ":30000")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput(ctx, echo.Ready); err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	gwv1.Install(scheme)
	c, err := client.New(env.Cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range gatewayObjects(kubelab.BackendAddr(1).Addr()) {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
	lab.Poll(t, "Gateway programmed with its address", 100*time.Millisecond, time.Minute, func() error {
		var gw gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKey{Namespace: "calls", Name: "edge"}, &gw); err != nil {
			return err
		}
		if !apimeta.IsStatusConditionTrue(gw.Status.Conditions, "Programmed") {
			return fmt.Errorf("not programmed: %+v", gw.Status.Conditions)
		}
		if len(gw.Status.Addresses) != 1 || gw.Status.Addresses[0].Value != gatewayAddr.String() {
			return fmt.Errorf("addresses %+v, want %s", gw.Status.Addresses, gatewayAddr)
		}
		return nil
	})
	for _, network := range []string{"tcp", "udp"} {
		port := map[string]int{"tcp": 8443, "udp": 16384}[network]
		addr := netip.AddrPortFrom(gatewayAddr, uint16(port)).String()
		lab.Poll(t, network+" through the Gateway", 200*time.Millisecond, time.Minute, func() error {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return echo.RoundTrip(rctx, env.Site.Client.Dial, network, addr)
		})
	}
	t.Logf("client reached the backend at %s:15061/TCP and :30000/UDP through Gateway %s:8443/TCP and :16384/UDP",
		kubelab.BackendAddr(1).Addr(), gatewayAddr)
}

// gatewayObjects are the backend Service (no selector: its EndpointSlice
// names the echo host, there is no endpoints controller in the lab), the
// class, the Gateway and a TCPRoute and a UDPRoute to the backend.
func gatewayObjects(backend netip.Addr) []client.Object {
	parent := gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}}
	ref := func(port int32) []gwv1.BackendRef {
		return []gwv1.BackendRef{{BackendObjectReference: gwv1.BackendObjectReference{Name: "callserver", Port: ptr.To(port)}}}
	}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "calls"}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "callserver"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
				{Name: "sip", Protocol: corev1.ProtocolTCP, Port: 5061},
				{Name: "rtp", Protocol: corev1.ProtocolUDP, Port: 20000},
			}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "calls", Name: "callserver-1", Labels: map[string]string{discoveryv1.LabelServiceName: "callserver"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{
				{Name: ptr.To("sip"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](15061)},
				{Name: ptr.To("rtp"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](30000)},
			},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{backend.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		},
		&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "pier"}, Spec: gwv1.GatewayClassSpec{ControllerName: gatewayctl.ControllerName}},
		&gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "edge"},
			Spec: gwv1.GatewaySpec{
				GatewayClassName: "pier",
				Addresses:        []gwv1.GatewaySpecAddress{{Value: gatewayAddr.String()}},
				Listeners: []gwv1.Listener{
					{Name: "signalling", Protocol: gwv1.TCPProtocolType, Port: 8443},
					{Name: "media", Protocol: gwv1.UDPProtocolType, Port: 16384},
				},
			},
		},
		&gwv1.TCPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "sip"},
			Spec: gwv1.TCPRouteSpec{CommonRouteSpec: parent, Rules: []gwv1.TCPRouteRule{{BackendRefs: ref(5061)}}}},
		&gwv1.UDPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "rtp"},
			Spec: gwv1.UDPRouteSpec{CommonRouteSpec: parent, Rules: []gwv1.UDPRouteRule{{BackendRefs: ref(20000)}}}},
	}
}
