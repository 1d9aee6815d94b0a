package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/kubelab"
)

const (
	demoRouterASN = 64512
	demoNodeASN   = 64513
)

// demoBGP runs FRR on the router, peering with the three nodes, gives a
// Service an address from the BGP pool 203.0.113.0/24 and prints FRR's
// ECMP route for it.
func demoBGP(ctx context.Context, env *kubelab.Env) error {
	dir, err := os.MkdirTemp("", "pier-demo-frr-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	frr, err := env.StartFRR(ctx, dir, demoRouterASN, env.NodeNeighbors(demoNodeASN, false))
	if err != nil {
		return err
	}
	defer frr.Close()
	if err := createBGPConfig(ctx, env.Pier); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "calls-bgp", Namespace: "default",
			Annotations: map[string]string{v1alpha1.AnnotationAddressPool: "bgp"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "calls"},
			Ports: []corev1.ServicePort{
				{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
				{Name: "calls-udp", Protocol: corev1.ProtocolUDP, Port: 16384, TargetPort: intstr.FromInt32(16384)},
			}},
	}
	if err := env.Pier.Create(ctx, svc); err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	addr, err := serviceAddr(ctx, env.Pier, svc)
	if err != nil {
		return err
	}
	prefix := netip.PrefixFrom(addr, 32)
	var hops []string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		hops, _ = frr.NextHops(prefix)
		return len(hops) == len(env.Site.Nodes), nil
	})
	if err != nil {
		return fmt.Errorf("FRR has next hops %v for %s, want one per node: %w", hops, prefix, err)
	}
	slices.Sort(hops)
	route, _ := frr.VTYSH("show ip route " + prefix.String())
	fmt.Printf("BGP mode: FRR (AS %d) on %s peers with every node (AS %d).\n", demoRouterASN, env.Site.Router.NS, demoNodeASN)
	fmt.Printf("Service default/calls-bgp (8443/TCP, 16384/UDP) got %s from pool bgp (203.0.113.0/24, .0 and .255 skipped); FRR routes it over %v (ECMP):\n\n%s\n",
		addr, hops, route)
	fmt.Printf("Try:\n  vtysh -N %s -c 'show bgp ipv4 unicast %s'\n  vtysh -N %s -c 'show bgp summary'\n", frr.Name, prefix, frr.Name)
	fmt.Printf("  %s --kubeconfig %s get bgpsessionstatuses -n %s\n\n", filepath.Join(cluster.DefaultBinDir(), "kubectl"),
		env.Cluster.Kubeconfig, kubelab.PierNamespace)
	<-ctx.Done()
	return nil
}

func createBGPConfig(ctx context.Context, c client.Client) error {
	ns := kubelab.PierNamespace
	objs := []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns},
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}, AutoAssign: ptr.To(false), AvoidBuggyIPs: true}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router", Namespace: ns},
			Spec: v1alpha1.BGPPeerSpec{MyASN: demoNodeASN, PeerASN: demoRouterASN, PeerAddress: "198.51.100.1"}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns},
			Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

func serviceAddr(ctx context.Context, c client.Client, svc *corev1.Service) (netip.Addr, error) {
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, err
		}
		var err error
		addr, err = netip.ParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		return err == nil, err
	})
	if err != nil {
		return addr, fmt.Errorf("service %s got no address: %w", svc.Name, err)
	}
	return addr, nil
}
