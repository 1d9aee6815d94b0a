package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/prereq"
)

// repo is the repository root, relative to this package.
const repo = "../.."

// HelmVersion is the version hack/tools.sh builds.
const HelmVersion = "v3.22.0"

func kubectlPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(cluster.DefaultBinDir(), "kubectl")
	if _, err := os.Stat(p); err != nil {
		prereq.Missing(t, "kubectl in %s (run hack/controlplane.sh)", cluster.DefaultBinDir())
	}
	return p
}

func helmPath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PIER_TOOLS_DIR")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "pier", "bin", "tools-helm-"+HelmVersion)
	}
	p := filepath.Join(dir, "helm")
	if _, err := os.Stat(p); err != nil {
		prereq.Missing(t, "helm in %s (run hack/tools.sh)", dir)
	}
	return p
}

// run runs a command with stdin and returns its stdout; a non-zero exit
// fails the test with stderr.
func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := tryRun(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

func tryRun(stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	// helm keeps its caches and configuration under HOME; keep them out of
	// the user's.
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+os.TempDir()+"/pier-helm-cache",
		"HELM_CONFIG_HOME="+os.TempDir()+"/pier-helm-config", "HELM_DATA_HOME="+os.TempDir()+"/pier-helm-data")
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// kustomize builds dir (relative to the repository root or absolute).
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repo, dir)
	}
	return run(t, nil, kubectlPath(t), "kustomize", dir)
}

// helmTemplate renders the chart in namespace pier-system with the values
// files given.
func helmTemplate(t *testing.T, values ...string) []byte {
	t.Helper()
	args := []string{"template", "pier", filepath.Join(repo, "charts", "pier"), "--namespace", "pier-system"}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	return run(t, nil, helmPath(t), args...)
}

// parse splits a multi-document YAML stream into objects.
func parse(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	if len(objs) == 0 {
		t.Fatal("no objects rendered")
	}
	return objs
}

// find returns the object of kind and name, failing the test when absent.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

// kubeconfig writes the admin kubeconfig of c and returns kubectl's
// arguments for it.
func kubeArgs(c *cluster.Cluster, args ...string) []string {
	return append([]string{"--kubeconfig", c.Kubeconfig}, args...)
}
