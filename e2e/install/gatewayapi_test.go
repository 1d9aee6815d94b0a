package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/manifests"
)

// TestGatewayAPIChartCopiesCurrent: the chart carries copies of
// manifests/gateway-api (Helm reads no file outside the chart);
// hack/sync-crds.sh writes them.
func TestGatewayAPIChartCopiesCurrent(t *testing.T) {
	for _, ch := range []string{manifests.GatewayAPIStandard, manifests.GatewayAPIExperimental} {
		want, err := manifests.GatewayAPIFiles(ch)
		if err != nil {
			t.Fatal(err)
		}
		files, err := filepath.Glob(filepath.Join(repo, "charts", "pier", "files", "gateway-api", ch, "*"))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]byte{}
		for _, f := range files {
			if got[filepath.Base(f)], err = os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("charts/pier/files/gateway-api/%s differs from manifests/gateway-api (run make generate):\n%s", ch, diff)
		}
	}
}

// TestHelmGatewayAPI renders the chart with gatewayAPI on, for each
// channel: the release's CRDs unchanged but for the keep policy, the
// controller told to serve Gateways, and all of it accepted by a real API
// server. Off (the default) renders no Gateway API object.
func TestHelmGatewayAPI(t *testing.T) {
	kubectlPath(t)
	helmPath(t)
	off := parse(t, helmTemplate(t))
	for _, o := range off {
		if strings.Contains(o.GetName(), "gateway.networking") {
			t.Errorf("default values render %s %s", o.GetKind(), o.GetName())
		}
	}
	if args := controllerArgs(t, off); !strings.Contains(args, "--gateway-api=false") {
		t.Errorf("default controller args %s lack --gateway-api=false", args)
	}
	c := cluster.ForTest(t, cluster.Options{})
	installCRDs(t, c)
	for _, ch := range []string{manifests.GatewayAPIStandard, manifests.GatewayAPIExperimental} {
		t.Run(ch, func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(values, []byte("gatewayAPI: {enabled: true, channel: "+ch+"}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			data := helmTemplate(t, values)
			objs := parse(t, data)
			want, err := manifests.GatewayAPICRDs(ch)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range want {
				var got apiextensionsv1.CustomResourceDefinition
				convert(t, find(t, objs, "CustomResourceDefinition", w.Name), &got)
				if p := got.Annotations["helm.sh/resource-policy"]; p != "keep" {
					t.Errorf("%s: resource-policy %q, want keep", w.Name, p)
				}
				delete(got.Annotations, "helm.sh/resource-policy")
				if diff := cmp.Diff(w, &got); diff != "" {
					t.Errorf("%s rendered differs from the release's (-release +rendered):\n%s", w.Name, diff)
				}
			}
			if n := count(objs, "CustomResourceDefinition"); n != len(want) {
				t.Errorf("%d CRDs rendered, want the Gateway API's %d", n, len(want))
			}
			if args := controllerArgs(t, objs); !strings.Contains(args, "--gateway-api=true") {
				t.Errorf("controller args %s lack --gateway-api=true", args)
			}
			dryRun(t, c, data)
		})
	}
}

func controllerArgs(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	spec := podSpecs(t, objs)["pier-controller"]
	if len(spec.Containers) == 0 {
		t.Fatal("no pier-controller rendered")
	}
	return strings.Join(spec.Containers[0].Args, " ")
}
