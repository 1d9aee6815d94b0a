package install

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/e2e/cluster"
)

// chartBudget is what Pier's chart may hold. Helm stores a release (the
// chart's files, base64-encoded, and the rendered manifest, gzipped) in a
// Secret, which the API server refuses beyond 1 MiB: with the Gateway API
// CRDs in the chart a release came to about 1.1 MiB and `helm install`
// failed. The budget leaves room for the manifest.
const chartBudget = 384 << 10

// TestChartFitsAHelmRelease keeps the chart within chartBudget.
func TestChartFitsAHelmRelease(t *testing.T) {
	var total int64
	err := filepath.WalkDir(filepath.Join(repo, "charts", "pier"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		total += info.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > chartBudget {
		t.Errorf("charts/pier holds %d KiB, over the %d KiB a Helm release can carry with its manifest", total>>10, chartBudget>>10)
	}
}

// TestHelmGatewayAPI renders the chart with gatewayAPI on and off: on
// tells the controller to serve Gateways, and the chart renders no Gateway
// API object either way (the CRDs are installed apart; see chartBudget).
// Both are accepted by a real API server.
func TestHelmGatewayAPI(t *testing.T) {
	kubectlPath(t)
	helmPath(t)
	off := helmTemplate(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("gatewayAPI: {enabled: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	on := helmTemplate(t, values)
	for _, tc := range []struct {
		name string
		data []byte
		arg  string
	}{{"off", off, "--gateway-api=false"}, {"on", on, "--gateway-api=true"}} {
		objs := parse(t, tc.data)
		for _, o := range objs {
			if strings.Contains(o.GetName(), "gateway.networking") {
				t.Errorf("%s: renders %s %s", tc.name, o.GetKind(), o.GetName())
			}
		}
		if args := controllerArgs(t, objs); !strings.Contains(args, tc.arg) {
			t.Errorf("%s: controller args %s lack %s", tc.name, args, tc.arg)
		}
	}
	c := cluster.ForTest(t, cluster.Options{})
	installCRDs(t, c)
	dryRun(t, c, on)
}

func controllerArgs(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	spec := podSpecs(t, objs)["pier-controller"]
	if len(spec.Containers) == 0 {
		t.Fatal("no pier-controller rendered")
	}
	return strings.Join(spec.Containers[0].Args, " ")
}
