package kind_test

import (
	"context"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kind"
	"github.com/pier-lb/pier/e2e/scenario"
)

// TestKindScenarios runs the shared scenarios against the kind lab that
// e2e/kind/lab.sh brought up; lab.sh's test action runs it with the
// cluster's kubeconfig and container names in the environment. Elsewhere
// (make test, CI) there is no kind cluster, and it skips saying so.
func TestKindScenarios(t *testing.T) {
	kubeconfig := os.Getenv("PIER_KIND_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("SKIP: PIER_KIND_KUBECONFIG not set; e2e/kind/lab.sh test runs this against its kind cluster")
	}
	site, err := kind.New(kind.Options{
		Kube:   kubeClient(t, kubeconfig),
		Router: os.Getenv("PIER_KIND_ROUTER"),
		Client: os.Getenv("PIER_KIND_CLIENT"),
		Port:   8080, // workload.yaml's agnhost netexec
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Run("l2", func(t *testing.T) {
		r, err := scenario.CheckL2(ctx, site, scenario.Service{Namespace: "default", Name: "calls-l2", Pool: "l2"})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s answered by %s (%s) only; reached backend %s", r.Addr, r.Node, r.MAC, r.Backend)
	})
	t.Run("bgp", func(t *testing.T) {
		r, err := scenario.CheckBGP(ctx, site, scenario.Service{Namespace: "default", Name: "calls-bgp", Pool: "bgp"})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s/32 at the router via %v; reached backend %s through it", r.Addr, r.NextHops, r.Backend)
	})
}

func kubeClient(t *testing.T, kubeconfig string) client.Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("client for %s: %v", kubeconfig, err)
	}
	return c
}
