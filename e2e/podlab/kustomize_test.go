package podlab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/podlab"
	"github.com/pier-lb/pier/e2e/scenario"
)

// TestKustomizeInstall installs Pier as an air-gapped site would with
// kustomize: the L2 overlay plus a site overlay whose images: points at the
// site registry. Everything becomes Ready, a Service is answered through
// its L2 address, and kubectl delete -k removes it.
func TestKustomizeInstall(t *testing.T) {
	e := cluster(t)
	ctx := context.Background()
	if err := e.LabelNodes(ctx, "pier.dev/relay", "true"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// kustomize takes bases by relative path only.
	base, err := filepath.Rel(dir, filepath.Join(e.Root, "manifests", "overlays", "l2"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- name: ghcr.io/pier-lb/pier
  newName: %s/%s
  newTag: lab
`, base, e.Registry, podlab.PierRepository)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o600); err != nil {
		t.Fatal(err)
	}
	applyKustomize(t, e, dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pier-system:\n%s", e.Describe(context.Background(), podlab.Namespace))
		}
		_, _ = e.Kubectl(context.Background(), "delete", "--ignore-not-found", "-k", dir, "--wait=true")
		_, _ = e.Kubectl(context.Background(), "delete", "namespace", "voice-k", "--ignore-not-found", "--wait=true")
	})
	if err := e.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeployCallServers(ctx, "voice-k", "media", 2); err != nil {
		t.Fatal(err)
	}
	addr, err := e.CreateCallService(ctx, "voice-k", "media", corev1.ServiceExternalTrafficPolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	// The L2 scenario the kind lab runs too (e2e/scenario).
	l2, err := scenario.CheckL2(ctx, e.ScenarioSite(nil), scenario.Service{Namespace: "voice-k", Name: "media", Pool: "l2"})
	if err != nil {
		t.Fatal(err)
	}
	owner := l2.Node
	call, err := podlab.StartCall(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		t.Fatal(err)
	}
	waitAnswers(t, call, 10)
	t.Logf("%s (externalTrafficPolicy Local) answered by %s: %v", addr, owner, call.Stop())

	// Deleting the CRDs takes their objects with them: the pool and
	// advertisement are then not found, which is no error here.
	if _, err := e.Kubectl(ctx, "delete", "--ignore-not-found", "-k", dir, "--wait=true"); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitNoPods(ctx, podlab.Namespace, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// applyKustomize applies dir as a user does on a fresh cluster: the first
// apply creates the CRDs but may refuse the objects of their kinds until
// they are established; a second apply then takes them.
func applyKustomize(t *testing.T, e *podlab.Env, dir string) {
	t.Helper()
	ctx := context.Background()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err := e.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-k", dir)
		if err == nil {
			return true, nil
		}
		last = out
		return !strings.Contains(out, "ensure CRDs are installed first"), nil
	})
	if err != nil || last != "" && !strings.Contains(last, "ensure CRDs") {
		t.Fatalf("kubectl apply -k: %v: %s", err, last)
	}
}
