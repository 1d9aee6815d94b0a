package manifests_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/manifests"
)

// TestGatewayAPIMatchesModule checks that gateway-api/ holds exactly the
// CRD files of the sigs.k8s.io/gateway-api version in go.mod, unchanged:
// the Go types the controller uses and the CRDs it is tested and shipped
// with come from one release.
func TestGatewayAPIMatchesModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v", err)
	}
	version, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if version != manifests.GatewayAPIVersion {
		t.Fatalf("go.mod has sigs.k8s.io/gateway-api %s, manifests.GatewayAPIVersion is %s: copy the new release's config/crd", version, manifests.GatewayAPIVersion)
	}
	if dir == "" {
		t.Fatal("sigs.k8s.io/gateway-api is not in the module cache: run go mod download")
	}
	for _, ch := range []string{manifests.GatewayAPIStandard, manifests.GatewayAPIExperimental} {
		got, err := manifests.GatewayAPIFiles(ch)
		if err != nil {
			t.Fatal(err)
		}
		src, err := filepath.Glob(filepath.Join(dir, "config", "crd", ch, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range src {
			name := filepath.Base(f)
			if name == "kustomization.yaml" {
				continue
			}
			want = append(want, name)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[name], data) {
				t.Errorf("%s/%s differs from the module's copy", ch, name)
			}
		}
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range got {
				if !yield(n) {
					return
				}
			}
		})
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("%s files (-module +vendored):\n%s", ch, diff)
		}
	}
}

func TestGatewayAPICRDs(t *testing.T) {
	for _, tc := range []struct {
		channel string
		n       int
	}{{manifests.GatewayAPIStandard, 10}, {manifests.GatewayAPIExperimental, 13}} {
		crds, err := manifests.GatewayAPICRDs(tc.channel)
		if err != nil {
			t.Fatal(err)
		}
		if len(crds) != tc.n {
			t.Errorf("%s: %d CRDs, want %d", tc.channel, len(crds), tc.n)
		}
		for _, c := range crds {
			if v := c.Annotations["gateway.networking.k8s.io/bundle-version"]; v != manifests.GatewayAPIVersion {
				t.Errorf("%s %s: bundle-version %q, want %s", tc.channel, c.Name, v, manifests.GatewayAPIVersion)
			}
			if v := c.Annotations["gateway.networking.k8s.io/channel"]; v != tc.channel {
				t.Errorf("%s %s: channel %q", tc.channel, c.Name, v)
			}
		}
	}
	if _, err := manifests.GatewayAPIFiles("beta"); err == nil {
		t.Error("channel beta accepted")
	}
}

// TestInstallGatewayAPI installs the standard channel, then the
// experimental one over it (an upgrade in place), on a real API server.
func TestInstallGatewayAPI(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ch := range []string{manifests.GatewayAPIStandard, manifests.GatewayAPIExperimental} {
		if err := manifests.InstallGatewayAPI(ctx, c.Config, ch); err != nil {
			t.Fatalf("install %s: %v", ch, err)
		}
	}
}
