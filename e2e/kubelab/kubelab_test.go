package kubelab_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/kubelab"
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
