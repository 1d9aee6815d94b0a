package install

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCRDCopiesCurrent: the kustomize base and the chart carry copies of the
// generated CRDs (kustomize and Helm read no file outside their own
// directory); hack/sync-crds.sh (make generate) writes them.
func TestCRDCopiesCurrent(t *testing.T) {
	gen := crdFiles(t, filepath.Join(repo, "manifests", "crd"))
	for _, dir := range []string{"manifests/base/crds", "charts/pier/crds"} {
		if diff := cmp.Diff(gen, crdFiles(t, filepath.Join(repo, dir))); diff != "" {
			t.Errorf("%s differs from manifests/crd (run make generate):\n%s", dir, diff)
		}
	}
	k, err := os.ReadFile(filepath.Join(repo, "manifests", "base", "crds", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range gen {
		if !bytes.Contains(k, []byte("- "+name+"\n")) {
			t.Errorf("manifests/base/crds/kustomization.yaml does not list %s (run make generate)", name)
		}
	}
	if n := strings.Count(string(k), "\n- "); n != len(gen) {
		t.Errorf("manifests/base/crds/kustomization.yaml lists %d resources, manifests/crd has %d", n, len(gen))
	}
}

func crdFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "pier.dev_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", dir, err)
	}
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(data)
	}
	return out
}
