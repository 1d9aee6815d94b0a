package podlab_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/yaml"

	"github.com/pier-lb/pier/controller/gatewayctl"
	"github.com/pier-lb/pier/e2e/podlab"
	"github.com/pier-lb/pier/internal/release"
)

// The child run of TestGatewayConformance (the test binary started again
// inside the site's client namespace, so that the suite reaches Gateway
// addresses as a client of the site does) gets its inputs from these.
const (
	conformanceKubeconfigEnv = "PIER_CONFORMANCE_KUBECONFIG"
	conformanceImageEnv      = "PIER_CONFORMANCE_ECHO_IMAGE"
	conformanceReportEnv     = "PIER_CONFORMANCE_REPORT"
	conformanceVersionEnv    = "PIER_CONFORMANCE_VERSION"
	conformanceDataPathEnv   = "PIER_CONFORMANCE_DATAPATH"
	// PIER_CONFORMANCE_REPORT_DIR keeps the suite's reports there
	// (kubeproxy.yaml, relay.yaml).
	conformanceReportDirEnv = "PIER_CONFORMANCE_REPORT_DIR"
)

// conformanceClass is the class the suite runs with, its Gateways served
// on dataPath (KubeProxy or Relay).
func conformanceClass(dataPath string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata: {name: gateway-conformance, namespace: ` + podlab.Namespace + `}
data: {dataPath: ` + dataPath + `}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: pier}
spec:
  controllerName: ` + string(gatewayctl.ControllerName) + `
  parametersRef: {group: "", kind: ConfigMap, name: gateway-conformance, namespace: ` + podlab.Namespace + `}
`
}

// conformanceSkipped are the suite's tests of the features Pier's
// GatewayClass claims that Pier cannot pass, and why.
var conformanceSkipped = map[string]string{
	"GatewayInvalidRouteKind":                   "needs an HTTP listener",
	"GatewayInvalidTLSConfiguration":            "needs HTTPS listeners",
	"GatewayListenerUnsupportedProtocol":        "expects an HTTP listener to be accepted",
	"TCPRouteInvalidNonTCPListener":             "waits for a Gateway with only an HTTP listener to be programmed",
	"GatewayModifyListeners":                    "needs HTTP and HTTPS listeners",
	"GatewayObservedGenerationBump":             "needs an HTTP listener",
	"GatewaySecretInvalidReferenceGrant":        "needs an HTTPS listener",
	"GatewaySecretMissingReferenceGrant":        "needs an HTTPS listener",
	"GatewaySecretReferenceGrantAllInNamespace": "needs an HTTPS listener",
	"GatewaySecretReferenceGrantSpecific":       "needs an HTTPS listener",
	"UDPRoute":                                  "its backend is a CoreDNS image, which the lab cannot build",
}

// kubeProxySkipped are skipped on the kube-proxy data path only.
var kubeProxySkipped = map[string]string{
	"TCPRouteWeightedRouting": "weights are not honoured on the kube-proxy data path",
	"UDPRouteWeightedRouting": "weights are not honoured on the kube-proxy data path",
}

// TestGatewayConformance runs the Gateway API conformance suite's TCP and
// UDP profiles against Pier installed by its chart (gatewayAPI.enabled,
// the CRDs applied from manifests/gateway-api), once per data path of the
// class (kube-proxy, then pier-relay), with the suite's echo backends
// built from its own module and pulled from the lab registry. The suite
// runs in the site's client namespace: Gateways get addresses from Pier's
// L2 pool, announced by the speakers.
func TestGatewayConformance(t *testing.T) {
	if kubeconfig := os.Getenv(conformanceKubeconfigEnv); kubeconfig != "" {
		runConformanceSuite(t, kubeconfig)
		return
	}
	e := cluster(t)
	image := pushEchoBasic(t, e)
	installWithGatewayAPI(t, e)
	if _, err := e.Lab.AttachManagement(e.Site.Client); err != nil {
		t.Fatal(err)
	}
	class := filepath.Join(t.TempDir(), "class.yaml")
	// Before the uninstall: Pier's controller lifts the class's finalizer.
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := e.Kubectl(ctx, "delete", "-f", class, "--timeout=60s"); err != nil {
			t.Error(err)
		}
		_, _ = e.Kubectl(ctx, "delete", "namespace", "gateway-conformance-infra", "gateway-conformance-app-backend",
			"gateway-conformance-web-backend", "--ignore-not-found", "--wait=false")
	})
	for _, path := range []string{"KubeProxy", "Relay"} {
		t.Run(path, func(t *testing.T) {
			if err := os.WriteFile(class, []byte(conformanceClass(path)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Kubectl(context.Background(), "apply", "-f", class); err != nil {
				t.Fatal(err)
			}
			checkReport(t, runChild(t, e, path, image))
		})
	}
}

// runChild runs the suite in the client namespace on the class's data
// path and returns its report.
func runChild(t *testing.T, e *podlab.Env, path, image string) []byte {
	report := filepath.Join(t.TempDir(), "report.yaml")
	if dir := os.Getenv(conformanceReportDirEnv); dir != "" {
		report = filepath.Join(dir, strings.ToLower(path)+".yaml")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := e.Site.Client.Command(ctx, os.Args[0], "-test.run=^TestGatewayConformance$", "-test.v", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), conformanceKubeconfigEnv+"="+e.NodeKubeconfig, conformanceImageEnv+"="+image,
		conformanceReportEnv+"="+report, conformanceVersionEnv+"="+pierVersion(e.Root), conformanceDataPathEnv+"="+path)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance suite (in the client namespace):\n%s", resultLines(out))
	if err != nil {
		t.Fatalf("conformance suite: %v\n%s", err, tail(out, 200))
	}
	got, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("the suite wrote no report: %v", err)
	}
	return got
}

// checkReport: every profile's core tests passed, none failed.
func checkReport(t *testing.T, raw []byte) {
	var r confv1.ConformanceReport
	if err := yaml.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	if len(r.ProfileReports) == 0 {
		t.Fatalf("report holds no profile:\n%s", raw)
	}
	for _, p := range r.ProfileReports {
		t.Logf("%s: core %s (%d passed, %d skipped, %d failed)", p.Name, p.Core.Result, p.Core.Statistics.Passed, p.Core.Statistics.Skipped, p.Core.Statistics.Failed)
		if p.Core.Statistics.Failed != 0 || p.Core.Statistics.Passed == 0 {
			t.Errorf("%s: core tests failed or none passed:\n%s", p.Name, raw)
		}
	}
}

// runConformanceSuite is the child: the suite itself.
func runConformanceSuite(t *testing.T, kubeconfig string) {
	t.Setenv("KUBECONFIG", kubeconfig)
	manifests, err := labManifests(os.Getenv(conformanceImageEnv))
	if err != nil {
		t.Fatal(err)
	}
	opts := conformance.DefaultOptions(t)
	opts.GatewayClassName = "pier"
	opts.ConformanceProfiles = []suite.ConformanceProfileName{suite.GatewayTCPConformanceProfileName, suite.GatewayUDPConformanceProfileName}
	for name := range conformanceSkipped {
		opts.SkipTests = append(opts.SkipTests, name)
	}
	if os.Getenv(conformanceDataPathEnv) == "KubeProxy" {
		for name := range kubeProxySkipped {
			opts.SkipTests = append(opts.SkipTests, name)
		}
	}
	slices.Sort(opts.SkipTests)
	opts.ManifestFS = []fs.FS{manifests}
	opts.BaseManifests = "base/manifests.yaml"
	// The base stays for the next data path's run; the parent removes it.
	opts.CleanupBaseResources = false
	opts.ReportOutputPath = os.Getenv(conformanceReportEnv)
	opts.Implementation = confv1.Implementation{Organization: "pier-lb", Project: "pier",
		URL: "https://github.com/pier-lb/pier", Version: os.Getenv(conformanceVersionEnv), Contact: []string{"@pier-lb/maintainers"}}
	conformance.RunConformanceWithOptions(t, opts)
}

var echoImage = regexp.MustCompile(`registry\.k8s\.io/gateway-api/echo-basic:[A-Za-z0-9._-]+`)

// labManifests is the suite's manifests with the echo backends' image
// replaced by the lab registry's, and the base reduced by labBase: its
// Gateways have HTTP listeners and most of its backends serve HTTP, gRPC
// and DNS tests, none of which the TCP and UDP tests use (they bring
// their own backends).
func labManifests(image string) (fstest.MapFS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(conformance.Manifests, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(conformance.Manifests, path)
		if err != nil {
			return err
		}
		if path == "base/manifests.yaml" {
			if b, err = labBase(b); err != nil {
				return err
			}
		}
		out[path] = &fstest.MapFile{Data: echoImage.ReplaceAll(b, []byte(image)), Mode: 0o644}
		return nil
	})
	return out, err
}

// baseKept are the base's backends kept, one per namespace: the suite
// waits for a ready Pod in each of its namespaces.
var baseKept = map[string]bool{"infra-backend-v1": true, "app-backend-v1": true, "web-backend": true}

// labBase reduces the base manifests to the namespaces and baseKept, with
// one replica each.
func labBase(b []byte) ([]byte, error) {
	var out bytes.Buffer
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var head struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("base manifests: %w", err)
		}
		if head.Kind == "Namespace" || (head.Kind == "Deployment" || head.Kind == "Service") && baseKept[head.Metadata.Name] {
			doc = regexp.MustCompile(`(?m)^(\s*replicas:) \d+$`).ReplaceAllString(doc, "$1 1")
			out.WriteString("---\n" + strings.TrimSpace(doc) + "\n")
		}
	}
	return out.Bytes(), nil
}

// pushEchoBasic builds the suite's echo server from its module and pushes
// it to the lab registry.
func pushEchoBasic(t *testing.T, e *podlab.Env) string {
	dir := t.TempDir()
	if err := release.Build(e.Root, dir, "", "sigs.k8s.io/gateway-api/conformance/echo-basic"); err != nil {
		t.Fatal(err)
	}
	image, err := e.PushBinaryImage(filepath.Join(dir, "echo-basic"), "gateway-api/echo-basic:lab")
	if err != nil {
		t.Fatal(err)
	}
	return image
}

// installWithGatewayAPI installs the Gateway API CRDs as the README says
// (they stay, as on a user's cluster) and Pier with the Gateway API on,
// which it removes when the test ends.
func installWithGatewayAPI(t *testing.T, e *podlab.Env) {
	ctx := context.Background()
	if _, err := e.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(e.Root, "manifests", "gateway-api", "standard")); err != nil {
		t.Fatal(err)
	}
	if err := e.InstallPier(ctx, "lab", "--set", "gatewayAPI.enabled=true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uninstall(t, e) })
	if err := e.WaitRollout(ctx, podlab.Namespace, 5*time.Minute, []string{"pier-controller"}, []string{"pier-speaker"}); err != nil {
		t.Fatal(err)
	}
}

// pierVersion is the commit under test.
func pierVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

// resultLines are the suite's pass/fail/skip lines of out.
func resultLines(out []byte) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "--- ") || strings.HasPrefix(s, "ok ") || strings.HasPrefix(s, "FAIL") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(out []byte, n int) string {
	lines := strings.Split(string(out), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestLabManifests: no manifest the suite applies names an image outside
// the lab registry (but CoreDNS, for the skipped UDPRoute test), and the base keeps its namespaces and one backend of
// one replica in each.
func TestLabManifests(t *testing.T) {
	m, err := labManifests("192.0.2.1:5000/gateway-api/echo-basic:lab")
	if err != nil {
		t.Fatal(err)
	}
	for path, f := range m {
		if strings.HasPrefix(path, "mesh/") {
			continue // the mesh profiles are not run
		}
		for _, line := range strings.Split(string(f.Data), "\n") {
			if img, ok := strings.CutPrefix(strings.TrimSpace(line), "image: "); ok && img != "192.0.2.1:5000/gateway-api/echo-basic:lab" &&
				!strings.Contains(img, "coredns") {
				t.Errorf("%s: image %s", path, img)
			}
		}
	}
	var kinds []string
	for _, doc := range strings.Split(string(m["base/manifests.yaml"].Data), "---\n")[1:] {
		var head struct {
			Kind     string
			Metadata struct{ Name string }
			Spec     struct{ Replicas *int }
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, head.Kind+" "+head.Metadata.Name)
		if head.Spec.Replicas != nil && *head.Spec.Replicas != 1 {
			t.Errorf("%s %s: %d replicas", head.Kind, head.Metadata.Name, *head.Spec.Replicas)
		}
	}
	slices.Sort(kinds)
	want := []string{"Deployment app-backend-v1", "Deployment infra-backend-v1", "Deployment web-backend",
		"Namespace gateway-conformance-app-backend", "Namespace gateway-conformance-infra", "Namespace gateway-conformance-web-backend",
		"Service app-backend-v1", "Service infra-backend-v1", "Service web-backend"}
	if diff := gocmp.Diff(want, kinds); diff != "" {
		t.Errorf("base (-want +got):\n%s", diff)
	}
}
