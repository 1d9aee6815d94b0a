package kubelab_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// A process inside a node namespace reaches the API server over the
// management link, with the certificate checked, and sees every node.
func TestNodesReachControlPlane(t *testing.T) {
	prereq.Root(t)
	kubectl := filepath.Join(cluster.DefaultBinDir(), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		prereq.Missing(t, "kubectl not built (run hack/controlplane.sh): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := kubelab.Up(ctx, kubelab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	})

	nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes.Items {
		got = append(got, n.Name+" "+internalIPs(n)+" "+ready(n))
	}
	want := []string{
		"node1 198.51.100.11,2001:db8:100::11 True",
		"node2 198.51.100.12,2001:db8:100::12 True",
		"node3 198.51.100.13,2001:db8:100::13 True",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}

	out, err := env.Site.Nodes[2].Run(ctx, kubectl, "--kubeconfig", env.NodeKubeconfig, "get", "nodes", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("node/node1\nnode/node2\nnode/node3", strings.TrimSpace(out)); diff != "" {
		t.Errorf("kubectl in node3 (-want +got):\n%s", diff)
	}
}

func internalIPs(n corev1.Node) string {
	var ips []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ips = append(ips, a.Address)
		}
	}
	return strings.Join(ips, ",")
}

func ready(n corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return string(c.Status)
		}
	}
	return "Unknown"
}

// The demo's path: pier-controller runs inside node1, reaches the API server
// over the management link, and a new Service gets one address per family
// from the lab pool.
func TestDemoServiceGetsAddress(t *testing.T) {
	prereq.Root(t)
	bins, err := kubelab.BuildBinaries(t.TempDir(), "pier-controller")
	if err != nil {
		t.Fatal(err)
	}
	bin := bins["pier-controller"]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := kubelab.Up(ctx, kubelab.Options{Nodes: 2, ControllerBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller output:\n%s", env.ControllerProcess().Output())
		}
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	})
	addrs, err := env.CreateDemoService(ctx, "calls")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.String())
	}
	if diff := cmp.Diff([]string{"198.51.100.200", "2001:db8:100::200"}, got); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
}

// With Options.KubeProxy, kube-proxy (nftables) runs in every node: a
// NodePort Service without selector, whose EndpointSlice lists the nodes'
// echo servers, answers on every node's address at its NodePort, TCP and
// UDP. Close stops the kube-proxies.
func TestKubeProxyNodePort(t *testing.T) {
	prereq.Root(t)
	prereq.Tools(t, "nft")
	if _, err := kubelab.KubeProxyBinary(""); err != nil {
		prereq.Missing(t, "%v", err)
	}
	bins, err := kubelab.BuildBinaries(t.TempDir(), "pier-lab")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := kubelab.Up(ctx, kubelab.Options{Nodes: 2, KubeProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if closed {
			return
		}
		if t.Failed() {
			for i, p := range env.KubeProxies {
				t.Logf("kube-proxy node%d (tail):\n%s", i+1, p.OutputTail(30))
			}
		}
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	})
	env.StartEcho(t, bins["pier-lab"], ":8080", ":8081")
	svc := nodePortService(t, ctx, env)
	for i := range env.Site.Nodes {
		v4, _ := lab.NodeAddrs(i + 1)
		for _, p := range svc.Spec.Ports {
			network := strings.ToLower(string(p.Protocol))
			kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(v4.Addr(), uint16(p.NodePort)))
		}
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for i, p := range env.KubeProxies {
		select {
		case <-p.Done():
		default:
			t.Errorf("kube-proxy of node%d (pid %d) still runs after Close", i+1, p.Pid())
		}
	}
}

// nodePortService creates Service "echo" of type NodePort (8080/TCP,
// 8081/UDP) without selector, and its EndpointSlice: every node's echo.
func nodePortService(t *testing.T, ctx context.Context, env *kubelab.Env) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeNodePort,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{
				{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 8080},
				{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 8081},
			},
		},
	}
	svc, err := env.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-lab", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: "echo", discoveryv1.LabelManagedBy: "kubelab-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("tcp"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(8080))},
			{Name: ptr.To("udp"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(int32(8081))},
		},
	}
	for i, n := range env.Site.Nodes {
		v4, _ := lab.NodeAddrs(i + 1)
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{v4.Addr().String()}, NodeName: ptr.To(n.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if _, err := env.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return svc
}
