package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/controller/webhook"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/internal/release"
	"github.com/pier-lb/pier/manifests"
	"github.com/pier-lb/pier/pierctl/migrate"
	"github.com/pier-lb/pier/pierctl/status"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const pierNS = "pier-system"

// env is the control plane, its clients and the built pierctl binary.
type env struct {
	c    *cluster.Cluster
	kube kubernetes.Interface
	dyn  dynamic.Interface
	cl   client.Client
	bin  string
}

// run runs the pierctl binary and returns its exit code, stdout and stderr.
func (e *env) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run pierctl: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// TestAgainstAPIServer runs pierctl, built as users get it, against a real
// kube-apiserver: without Pier's CRDs, with the webhook admitting every
// converted fixture, reading MetalLB objects from the cluster, and status.
func TestAgainstAPIServer(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{}) // may skip: build after it
	e := &env{bin: buildPierctl(t), c: c}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e.clients(t)

	t.Run("without CRDs", func(t *testing.T) {
		code, stdout, stderr := e.run(t, "", "status", "--kubeconfig", e.c.Kubeconfig)
		if code != ExitFailure || !strings.Contains(stderr, "Pier's CRDs are not installed") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		// Pier's own Pods are shown all the same: they say why.
		if !strings.Contains(stdout, "COMPONENTS") || !strings.Contains(stdout, "(CRD relays.pier.dev not installed)") {
			t.Errorf("stdout:\n%s", stdout)
		}
	})
	if err := manifests.InstallCRDs(ctx, e.c.Config); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{pierNS, config.DefaultPasswordNamespace, migrate.DefaultMetalLBNamespace, "metallb-legacy", "shop"} {
		if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("converted fixtures pass the API server and the webhook", func(t *testing.T) { e.applyFixtures(ctx, t) })
	t.Run("migrate --from-cluster", func(t *testing.T) { e.fromCluster(ctx, t) })
	t.Run("status", func(t *testing.T) { e.status(ctx, t) })
	t.Run("unreachable API server", func(t *testing.T) {
		code, _, stderr := e.run(t, "", "status", "--kubeconfig", deadKubeconfig(t))
		if code != ExitFailure || !strings.Contains(stderr, "cannot reach the API server at https://127.0.0.1:") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestBinaryExitCodes checks pierctl's exit codes and report without a
// cluster.
func TestBinaryExitCodes(t *testing.T) {
	e := &env{bin: buildPierctl(t)}
	fixture := filepath.Join("..", "migrate", "testdata")
	for _, tc := range []struct {
		args   []string
		stdin  string
		code   int
		stderr string
	}{
		{[]string{}, "", ExitUsage, "Usage:"},
		{[]string{"frobnicate"}, "", ExitUsage, `unknown command "frobnicate"`},
		{[]string{"migrate"}, "", ExitUsage, "give either -f or --from-cluster"},
		{[]string{"status", "-o", "yaml"}, "", ExitUsage, `-o "yaml": want text or json`},
		{[]string{"migrate", "-f", filepath.Join(fixture, "l2-basic", "input.yaml"), "--strict"}, "", ExitOK, "2 objects written, 0 not carried over, 0 notes"},
		{[]string{"migrate", "-f", filepath.Join(fixture, "peers", "input.yaml"), "--strict"}, "", ExitDropped,
			"BFDProfile metallb-system/full: spec.echoMode: the echo function is not supported (asynchronous mode only), dropped"},
		{[]string{"migrate", "-f", filepath.Join(fixture, "peers", "input.yaml")}, "", ExitOK, "8 objects written, 8 not carried over, 3 notes"},
		{[]string{"migrate", "-f", "-"}, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [198.51.100.0/24]}\n" +
			"---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: b}\nspec: {addresses: [198.51.100.128/25]}\n",
			ExitFailure, `invalid: IPAddressPool pier-system/b: spec.addresses[0]: "198.51.100.128/25" overlaps`},
		{[]string{"migrate", "-f", "does-not-exist.yaml"}, "", ExitFailure, "does-not-exist.yaml: no such file"},
	} {
		code, _, stderr := e.run(t, tc.stdin, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("pierctl %v: exit %d, stderr:\n%s\nwant exit %d and %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
	// -o writes one file per object, Secrets readable by the owner only.
	dir := t.TempDir()
	code, stdout, _ := e.run(t, "", "migrate", "-f", filepath.Join(fixture, "peers"), "-o", dir)
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	want := []string{"01-secret-with-password-bgp-password.yaml", "02-ipaddresspool-bgp-pool.yaml", "04-bgppeer-dynamic.yaml", "04-bgppeer-old-style.yaml",
		"04-bgppeer-tuned.yaml", "04-bgppeer-with-password.yaml", "04-bgppeer-with-secret.yaml", "05-bgpadvertisement-to-some.yaml"}
	if diff := cmp.Diff(want, names); diff != "" || code != ExitOK || stdout != "" {
		t.Errorf("exit %d, stdout %q, files (-want +got):\n%s", code, stdout, diff)
	}
	if st, err := os.Stat(filepath.Join(dir, want[0])); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("Secret file: %v %v", st, err)
	}
}

func buildPierctl(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root, err := release.Root()
	if err == nil {
		err = release.Build(root, dir, "", "./cmd/pierctl")
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "pierctl")
}

func (e *env) clients(t *testing.T) {
	t.Helper()
	var err error
	if e.kube, err = kubernetes.NewForConfig(e.c.Config); err != nil {
		t.Fatal(err)
	}
	if e.dyn, err = dynamic.NewForConfig(e.c.Config); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if e.cl, err = client.New(e.c.Config, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
}

// deadKubeconfig points at a loopback port nothing listens on.
func deadKubeconfig(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["dead"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:" + strconv.Itoa(port), InsecureSkipTLSVerify: true}
	cfg.AuthInfos["dead"] = &clientcmdapi.AuthInfo{Token: "x"}
	cfg.Contexts["dead"] = &clientcmdapi.Context{Cluster: "dead", AuthInfo: "dead"}
	cfg.CurrentContext = "dead"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// applyFixtures runs Pier's webhook against the API server, then applies
// each fixture's converted objects with server-side apply and parses what
// the API server stored, one fixture at a time.
func (e *env) applyFixtures(ctx context.Context, t *testing.T) {
	stop := e.startWebhook(ctx, t)
	defer stop()
	bad := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: pierNS},
		Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.1/24"}}}
	e.createUntilRefused(ctx, t, bad)

	dirs, _ := filepath.Glob(filepath.Join("..", "migrate", "testdata", "*", "input.yaml"))
	for _, in := range dirs {
		name := filepath.Base(filepath.Dir(in))
		objs := convertFile(t, in, migrate.Options{})
		for _, o := range objs {
			if _, err := e.resource(o).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "pierctl-test"}); err != nil {
				t.Errorf("%s: apply %s %s: %v", name, o.GetKind(), o.GetName(), err)
			}
		}
		stored, err := webhook.ClientReader{Reader: e.cl}.Objects(ctx, pierNS)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse(stored); err != nil {
			t.Errorf("%s: config.Parse on the stored objects: %v", name, err)
		}
		if n := len(stored.Pools) + len(stored.L2Advertisements) + len(stored.BGPPeers) + len(stored.BGPAdvertisements); n != countPier(objs) {
			t.Errorf("%s: %d objects stored, %d converted", name, n, countPier(objs))
		}
		e.deleteAll(ctx, t, objs)
	}
	// The webhook was serving throughout: it still refuses.
	if err := e.cl.Create(ctx, bad.DeepCopy()); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "host bits") {
		t.Errorf("after the fixtures, the webhook did not refuse an invalid pool: %v", err)
	}
}

func countPier(objs []*unstructured.Unstructured) int {
	n := 0
	for _, o := range objs {
		if o.GetAPIVersion() == v1alpha1.GroupVersion.String() {
			n++
		}
	}
	return n
}

func convertFile(t *testing.T, path string, opts migrate.Options) []*unstructured.Unstructured {
	t.Helper()
	res := migrate.Convert(decodeFile(t, path), opts)
	objs, err := res.Output()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func decodeFile(t *testing.T, path string) []unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, err := migrate.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

var resources = map[string]string{
	"Secret": "secrets", "ConfigMap": "configmaps", "Service": "services",
	"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements", "BGPPeer": "bgppeers",
	"BGPAdvertisement": "bgpadvertisements", "Community": "communities", "BFDProfile": "bfdprofiles",
}

func (e *env) resource(o *unstructured.Unstructured) dynamic.ResourceInterface {
	gv, _ := schema.ParseGroupVersion(o.GetAPIVersion())
	return e.dyn.Resource(gv.WithResource(resources[o.GetKind()])).Namespace(o.GetNamespace())
}

func (e *env) deleteAll(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := e.resource(o).Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, o := range objs {
			if _, err := e.resource(o).Get(ctx, o.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("objects not deleted: %v", err)
	}
}

func (e *env) startWebhook(ctx context.Context, t *testing.T) func() {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := webhook.New(webhook.Options{Kube: e.kube, Objects: webhook.ClientReader{Reader: e.cl}, Namespace: pierNS,
		URL: "https://" + addr, ListenAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(wctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook Run: %v", err)
		}
	}
}

// createUntilRefused creates obj until the webhook, once the API server
// calls it, refuses it.
func (e *env) createUntilRefused(ctx context.Context, t *testing.T, obj client.Object) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		o := obj.DeepCopyObject().(client.Object)
		err := e.cl.Create(ctx, o)
		if err == nil {
			return false, e.cl.Delete(ctx, o)
		}
		return apierrors.IsInvalid(err) && strings.Contains(err.Error(), "denied the request"), nil
	})
	if err != nil {
		t.Fatalf("the webhook never refused %s: %v", obj.GetName(), err)
	}
}

// metallbCRDs are minimal stand-ins for MetalLB's CRDs: the kinds and
// versions pierctl reads, any content.
func (e *env) installMetalLBCRDs(ctx context.Context, t *testing.T) {
	t.Helper()
	cs, err := apiextensions.NewForConfig(e.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	preserve := true
	schemaAny := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object", XPreserveUnknownFields: &preserve}}
	for _, k := range []struct {
		kind     string
		versions []string
	}{
		{"IPAddressPool", []string{"v1beta1"}}, {"L2Advertisement", []string{"v1beta1"}},
		{"BGPAdvertisement", []string{"v1beta1"}}, {"Community", []string{"v1beta1"}},
		{"BFDProfile", []string{"v1beta1"}}, {"BGPPeer", []string{"v1beta2", "v1beta1"}},
	} {
		plural := resources[k.kind]
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + "." + migrate.Group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: migrate.Group, Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: k.kind, Plural: plural, ListKind: k.kind + "List"},
			},
		}
		for i, v := range k.versions {
			crd.Spec.Versions = append(crd.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{
				Name: v, Served: true, Storage: i == 0, Schema: schemaAny})
		}
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, err
		})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", crd.Name, err)
		}
	}
}

// fromCluster creates MetalLB objects (two fixtures, the legacy ConfigMap
// in a second MetalLB namespace, an annotated Service) and checks that
// pierctl migrate --from-cluster writes what converting the same objects
// from files writes, report included.
func (e *env) fromCluster(ctx context.Context, t *testing.T) {
	e.installMetalLBCRDs(ctx, t)
	data := filepath.Join("..", "migrate", "testdata")
	svc := decodeFile(t, filepath.Join(data, "misc", "input.yaml"))[2]
	if svc.GetKind() != "Service" {
		t.Fatalf("misc fixture: object 3 is a %s", svc.GetKind())
	}
	for _, tc := range []struct {
		namespace string
		files     []string
		code      int
	}{
		{migrate.DefaultMetalLBNamespace, []string{"peers", "l2-selectors"}, ExitDropped},
		{"metallb-legacy", []string{"legacy-configmap"}, ExitDropped},
	} {
		var in []unstructured.Unstructured
		for _, f := range tc.files {
			in = append(in, decodeFile(t, filepath.Join(data, f, "input.yaml"))...)
		}
		for i := range in {
			in[i].SetNamespace(tc.namespace)
		}
		in = append(in, svc)
		for i := range in {
			if _, err := e.resource(&in[i]).Create(ctx, &in[i], metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("create %s %s: %v", in[i].GetKind(), in[i].GetName(), err)
			}
		}
		res := migrate.Convert(in, migrate.Options{MetalLBNamespace: tc.namespace})
		objs, err := res.Output()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := migrate.WriteYAML(&want, objs); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := e.run(t, "", "migrate", "--from-cluster", "--kubeconfig", e.c.Kubeconfig,
			"--metallb-namespace", tc.namespace, "--strict")
		if diff := cmp.Diff(want.String(), stdout); diff != "" {
			t.Errorf("%s: --from-cluster output differs from the files' (-files +cluster):\n%s", tc.namespace, diff)
		}
		for _, f := range res.Findings {
			if !strings.Contains(stderr, f.String()+"\n") {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.namespace, f, stderr)
			}
		}
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.namespace, code, tc.code, stderr)
		}
	}
	code, _, stderr := e.run(t, "", "migrate", "--from-cluster", "--kubeconfig", e.c.Kubeconfig, "--metallb-namespace", "empty")
	if code != ExitOK || !strings.Contains(stderr, "0 objects written") {
		t.Errorf("empty namespace: exit %d, stderr %q", code, stderr)
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// status creates what the controller, speakers and relays would write and
// checks pierctl status against testdata/status.txt.
func (e *env) status(ctx context.Context, t *testing.T) {
	off := false
	pool := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: pierNS},
		Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"}}}
	reserved := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "reserved", Namespace: pierNS},
		Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/30"}, AutoAssign: &off}}
	e.create(ctx, t, pool, reserved)
	pool.Status = v1alpha1.IPAddressPoolStatus{AssignedIPv4: "1", AvailableIPv4: "50", AssignedIPv6: "1", AvailableIPv6: "50"}
	e.updateStatus(ctx, t, pool)

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "calls", Namespace: "default",
		Annotations: map[string]string{v1alpha1.AnnotationAllocatedFromPool: "default"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 8443}}}}
	e.create(ctx, t, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.200"}, {IP: "2001:db8:100::200"}}
	e.updateStatus(ctx, t, svc)
	// A Service without ready endpoints, which node2 would answer for.
	idle := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "default",
		Annotations: map[string]string{v1alpha1.AnnotationAllocatedFromPool: "default"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 8443}}}}
	e.create(ctx, t, idle)
	idle.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.202"}}
	e.updateStatus(ctx, t, idle)

	l2 := func(node string, addr string) *v1alpha1.ServiceL2Status {
		return &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Name: "calls-" + node, Namespace: pierNS,
			Labels: map[string]string{v1alpha1.LabelServiceName: "calls", v1alpha1.LabelServiceNamespace: "default", v1alpha1.LabelNode: node}},
			Status: v1alpha1.ServiceL2StatusStatus{Node: node, ServiceName: "calls", ServiceNamespace: "default",
				Addresses: []string{addr}, Interfaces: []string{"eth1"}}}
	}
	since := metav1.NewTime(t0.Add(-90 * time.Second))
	sess := func(node, state string, sent int32) *v1alpha1.BGPSessionStatus {
		return &v1alpha1.BGPSessionStatus{ObjectMeta: metav1.ObjectMeta{Name: "router-" + node, Namespace: pierNS,
			Labels: map[string]string{v1alpha1.LabelBGPPeer: "router"}},
			Status: v1alpha1.BGPSessionStatusStatus{Node: node, Peer: "router", PeerAddress: "198.51.100.1",
				State: state, Since: &since, PrefixesSent: sent}}
	}
	relay := &v1alpha1.Relay{ObjectMeta: metav1.ObjectMeta{Name: "calls", Namespace: "default"},
		Spec: v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "calls-backend"}, DataPath: v1alpha1.DataPathKernel},
		Status: v1alpha1.RelayStatus{Addresses: []string{"198.51.100.201"}, ReadyBackends: 2, ReadyRelays: 3,
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Serving", Message: "ok", LastTransitionTime: since}}}}
	bgpAnn := func(node string, peers ...string) *v1alpha1.BGPAnnouncementStatus {
		return &v1alpha1.BGPAnnouncementStatus{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: pierNS,
			Labels: map[string]string{v1alpha1.LabelNode: node}},
			Status: v1alpha1.BGPAnnouncementStatusStatus{Node: node, ServiceCount: 1, Services: []v1alpha1.BGPServiceAnnouncement{
				{Service: "default/calls", Addresses: []string{"198.51.100.200", "2001:db8:100::200"}, Peers: peers}}}}
	}
	cfg := func(node, component string, problems ...v1alpha1.ConfigurationProblem) *v1alpha1.ConfigurationStatus {
		return &v1alpha1.ConfigurationStatus{ObjectMeta: metav1.ObjectMeta{Name: component + "-" + node, Namespace: pierNS,
			Labels: map[string]string{v1alpha1.LabelNode: node, v1alpha1.LabelComponent: component}},
			Status: v1alpha1.ConfigurationStatusStatus{Node: node, Component: component, Valid: len(problems) == 0,
				Problems: problems, LastChange: &since}}
	}
	badPeer := v1alpha1.ConfigurationProblem{Kind: "BGPPeer", Namespace: pierNS, Name: "router2",
		Field: "spec.peerAddress", Message: `"192.0.2.300" is not an IP address`}
	withheld := &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Name: "idle-node2", Namespace: pierNS,
		Labels: map[string]string{v1alpha1.LabelServiceName: "idle", v1alpha1.LabelServiceNamespace: "default", v1alpha1.LabelNode: "node2"}},
		Status: v1alpha1.ServiceL2StatusStatus{Node: "node2", ServiceName: "idle", ServiceNamespace: "default",
			Addresses: []string{"198.51.100.202"}, NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints}}
	bgpWithheld := &v1alpha1.BGPAnnouncementStatus{ObjectMeta: metav1.ObjectMeta{Name: "node3", Namespace: pierNS,
		Labels: map[string]string{v1alpha1.LabelNode: "node3"}},
		Status: v1alpha1.BGPAnnouncementStatusStatus{Node: "node3", ServiceCount: 1, Services: []v1alpha1.BGPServiceAnnouncement{
			{Service: "default/idle", Addresses: []string{"198.51.100.202"}, Peers: []string{"router"}, NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints}}}}
	withStatus := []client.Object{l2("node1", "198.51.100.200"), l2("node2", "2001:db8:100::200"), withheld, bgpWithheld,
		sess("node1", "Established", 2), sess("node2", "Active", 0), relay,
		bgpAnn("node1", "router"), bgpAnn("node2", "router"),
		cfg("node1", "speaker"), cfg("node2", "speaker", badPeer), cfg("node1", "relay")}
	for _, o := range withStatus {
		st := o.DeepCopyObject().(client.Object)
		e.create(ctx, t, o)
		st.SetResourceVersion(o.GetResourceVersion())
		e.updateStatus(ctx, t, st)
	}

	e.speakerWithBadImage(ctx, t)

	objs, err := status.Read(ctx, e.c.Config, pierNS)
	if err != nil {
		t.Fatal(err)
	}
	st := status.Build(objs)
	var text bytes.Buffer
	if err := st.WriteText(&text, t0); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "status.txt"), text.String())

	code, stdout, stderr := e.run(t, "", "status", "--kubeconfig", e.c.Kubeconfig, "-o", "json")
	var got status.Status
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != ExitOK {
		t.Fatalf("status -o json: exit %d, %v; stderr %s", code, err, stderr)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("status -o json (-in process +binary):\n%s", diff)
	}
	code, stdout, _ = e.run(t, "", "status", "--kubeconfig", e.c.Kubeconfig)
	if code != ExitOK || !strings.Contains(stdout, "node1 (eth1) for 198.51.100.200; node2 (eth1) for 2001:db8:100::200") {
		t.Errorf("status: exit %d, output:\n%s", code, stdout)
	}
}

// speakerWithBadImage writes what the DaemonSet controller and a kubelet
// would for a speaker DaemonSet whose Pod on node2 cannot pull its image.
func (e *env) speakerWithBadImage(ctx context.Context, t *testing.T) {
	labels := map[string]string{status.LabelName: "pier", status.LabelComponent: "speaker"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "registry.lab/pier:no-such-tag"}}}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "pier-speaker", Namespace: pierNS, Labels: labels},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
	// No controller manager here makes the namespace's default account.
	e.create(ctx, t, ds, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: pierNS}})
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, CurrentNumberScheduled: 2, NumberReady: 1, UpdatedNumberScheduled: 2}
	e.updateStatus(ctx, t, ds)
	for _, node := range []string{"node1", "node2"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pier-speaker-" + node, Namespace: pierNS, Labels: labels},
			Spec: *tmpl.Spec.DeepCopy()}
		pod.Spec.NodeName = node
		e.create(ctx, t, pod)
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if node == "node2" {
			pod.Status = corev1.PodStatus{Phase: corev1.PodPending,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "speaker", Image: "registry.lab/pier:no-such-tag",
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
						Message: `Back-off pulling image "registry.lab/pier:no-such-tag"`}}}}}
		}
		e.updateStatus(ctx, t, pod)
	}
}

func (e *env) create(ctx context.Context, t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := e.cl.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
}

func (e *env) updateStatus(ctx context.Context, t *testing.T, o client.Object) {
	t.Helper()
	if err := e.cl.Status().Update(ctx, o); err != nil {
		t.Fatalf("status of %s: %v", o.GetName(), err)
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
