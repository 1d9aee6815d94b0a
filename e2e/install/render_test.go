package install

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pier-lb/pier/e2e/cluster"
)

const defaultImage = "ghcr.io/pier-lb/pier:v0.1.0"

// rendering is one way of installing Pier and what it must produce.
type rendering struct {
	name     string
	data     []byte
	image    string              // every container's image
	replicas int32               // controller replicas
	relay    map[string]string   // relay DaemonSet's nodeSelector; nil: no relay
	relayCap []corev1.Capability // capabilities the relay container adds
	crs      map[string]int      // Pier custom resources by kind
}

func renderings(t *testing.T) []rendering {
	relay := map[string]string{"pier.dev/relay": "true"}
	l2 := map[string]int{"IPAddressPool": 1, "L2Advertisement": 1}
	bgp := map[string]int{"IPAddressPool": 1, "BGPPeer": 1, "BGPAdvertisement": 1}
	both := map[string]int{"IPAddressPool": 2, "L2Advertisement": 1, "BGPPeer": 1, "BGPAdvertisement": 1}
	site, err := filepath.Abs("testdata/values-site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := filepath.Abs("testdata/values-relay-kernel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	netAdmin := []corev1.Capability{"NET_ADMIN"}
	return []rendering{
		{name: "kustomize/base", data: kustomize(t, "manifests/base"), image: defaultImage, replicas: 2, relay: relay, crs: map[string]int{}},
		{name: "kustomize/l2", data: kustomize(t, "manifests/overlays/l2"), image: defaultImage, replicas: 2, relay: relay, crs: l2},
		{name: "kustomize/bgp", data: kustomize(t, "manifests/overlays/bgp"), image: defaultImage, replicas: 2, relay: relay, crs: bgp},
		{name: "kustomize/l2-bgp", data: kustomize(t, "manifests/overlays/l2-bgp"), image: defaultImage, replicas: 2, relay: relay, crs: both},
		{name: "kustomize/private-registry", data: kustomize(t, privateRegistryOverlay(t)),
			image: "registry.example.internal/pier/pier:v0.1.0-site", replicas: 2, relay: relay, crs: both},
		{name: "kustomize/relay-kernel", data: kustomize(t, "manifests/overlays/relay-kernel"), image: defaultImage, replicas: 2,
			relay: relay, relayCap: netAdmin, crs: map[string]int{}},
		{name: "helm/default", data: helmTemplate(t), image: defaultImage, replicas: 2, crs: map[string]int{}},
		{name: "helm/relay-kernel", data: helmTemplate(t, kernel), image: defaultImage, replicas: 2,
			relay: relay, relayCap: netAdmin, crs: map[string]int{}},
		{name: "helm/site", data: helmTemplate(t, site), image: "registry.example.internal/pier/pier:v0.1.0-site", replicas: 3,
			relay: map[string]string{"example.internal/calling": "true"}, crs: both},
	}
}

// privateRegistryOverlay is what the README tells a site to write: an
// overlay of its own on top of one of Pier's, with the image moved to the
// site registry.
func privateRegistryOverlay(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	overlay, err := filepath.Abs(filepath.Join(repo, "manifests", "overlays", "l2-bgp"))
	if err != nil {
		t.Fatal(err)
	}
	// kustomize takes no absolute resource paths.
	rel, err := filepath.Rel(dir, overlay)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel + "\n" +
		"images:\n- name: ghcr.io/pier-lb/pier\n  newName: registry.example.internal/pier/pier\n  newTag: v0.1.0-site\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestManifestsAcceptedByAPIServer installs the CRDs for real, then puts
// every rendering through a server-side dry run and checks what matters in
// the rendered objects.
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	kubectlPath(t)
	helmPath(t)
	c := cluster.ForTest(t, cluster.Options{})
	installCRDs(t, c)
	for _, r := range renderings(t) {
		t.Run(r.name, func(t *testing.T) {
			dryRun(t, c, r.data)
			objs := parse(t, r.data)
			checkImages(t, objs, r.image)
			checkController(t, objs, r.replicas)
			checkSpeaker(t, objs)
			checkRelay(t, objs, r.relay, r.relayCap)
			got := map[string]int{}
			for _, o := range objs {
				if strings.HasPrefix(o.GetAPIVersion(), "pier.dev/") {
					got[o.GetKind()]++
				}
			}
			if diff := cmp.Diff(r.crs, got); diff != "" {
				t.Errorf("Pier objects rendered (-want +got):\n%s", diff)
			}
		})
	}
	// The kind lab's own objects (it applies the base and the l2-bgp
	// overlay above, then these).
	t.Run("kind/workload", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(repo, "e2e", "kind", "workload.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dryRun(t, c, data)
		svc := find(t, parse(t, data), "Service", "calls-bgp")
		if svc.GetAnnotations()["pier.dev/address-pool"] != "bgp" {
			t.Errorf("calls-bgp does not ask for the bgp pool: %v", svc.GetAnnotations())
		}
	})
}

// installCRDs applies Pier's CRDs (and stand-ins for the Prometheus
// Operator's) for real and creates Pier's namespaces, so that namespaced objects
// and custom resources can be dry-run.
func installCRDs(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	kubectl := kubectlPath(t)
	run(t, nil, kubectl, kubeArgs(c, "apply", "--server-side", "-k", filepath.Join(repo, "manifests", "base", "crds"))...)
	run(t, nil, kubectl, kubeArgs(c, "apply", "--server-side", "-f", "testdata/monitoring-crds.yaml")...)
	run(t, nil, kubectl, kubeArgs(c, "wait", "--for=condition=Established", "--timeout=120s", "crd", "--all")...)
	run(t, nil, kubectl, kubeArgs(c, "create", "namespace", "pier-system")...)
	run(t, nil, kubectl, kubeArgs(c, "create", "namespace", "pier-relays")...)
	run(t, nil, kubectl, kubeArgs(c, "create", "namespace", "pier-webhook")...)
	run(t, nil, kubectl, kubeArgs(c, "create", "namespace", "pier-bgp-passwords")...)
}

// dryRun applies data server-side in dry-run mode and checks that the API
// server accepted every object.
func dryRun(t *testing.T, c *cluster.Cluster, data []byte) {
	t.Helper()
	out := run(t, data, kubectlPath(t), kubeArgs(c, "apply", "--server-side", "--dry-run=server", "--field-manager=pier-install-test", "-f", "-")...)
	accepted := strings.Count(string(out), "(server dry run)")
	if n := len(parse(t, data)); accepted != n {
		t.Errorf("API server accepted %d of %d objects:\n%s", accepted, n, out)
	}
}

func podSpecs(t *testing.T, objs []*unstructured.Unstructured) map[string]corev1.PodSpec {
	specs := map[string]corev1.PodSpec{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			convert(t, o, &d)
			specs[o.GetName()] = d.Spec.Template.Spec
		case "DaemonSet":
			var d appsv1.DaemonSet
			convert(t, o, &d)
			specs[o.GetName()] = d.Spec.Template.Spec
		}
	}
	return specs
}

func convert(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

// checkImages: every container runs the expected image, which has a tag
// and never "latest".
func checkImages(t *testing.T, objs []*unstructured.Unstructured, want string) {
	t.Helper()
	specs := podSpecs(t, objs)
	if len(specs) == 0 {
		t.Fatal("no workloads rendered")
	}
	for name, s := range specs {
		for _, c := range append(s.InitContainers, s.Containers...) {
			if c.Image != want {
				t.Errorf("%s/%s image %q, want %q", name, c.Name, c.Image, want)
			}
			if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image[strings.LastIndex(c.Image, "/")+1:], ":") {
				t.Errorf("%s/%s image %q has no version tag", name, c.Name, c.Image)
			}
		}
	}
}

func checkController(t *testing.T, objs []*unstructured.Unstructured, replicas int32) {
	t.Helper()
	var d appsv1.Deployment
	convert(t, find(t, objs, "Deployment", "pier-controller"), &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
		t.Errorf("controller replicas %v, want %d", d.Spec.Replicas, replicas)
	}
	s := d.Spec.Template.Spec
	if s.HostNetwork || s.SecurityContext == nil || s.SecurityContext.RunAsNonRoot == nil || !*s.SecurityContext.RunAsNonRoot {
		t.Errorf("controller must run as non-root in the pod network: %+v", s.SecurityContext)
	}
	checkContainerSecurity(t, "controller", s, nil)
	if !slices.Contains(s.Containers[0].Args, "--leader-elect=true") {
		t.Errorf("controller args %v lack leader election", s.Containers[0].Args)
	}
	find(t, objs, "PodDisruptionBudget", "pier-controller")
	find(t, objs, "Service", "pier-webhook")
	find(t, objs, "Service", "pier-controller-metrics")
	find(t, objs, "NetworkPolicy", "pier-controller")
	wh := find(t, objs, "ValidatingWebhookConfiguration", "pier-validating")
	hooks, _, _ := unstructured.NestedSlice(wh.Object, "webhooks")
	if len(hooks) != 1 {
		t.Fatalf("webhooks: %v", hooks)
	}
	name, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "service", "name")
	ns, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "service", "namespace")
	if name != "pier-webhook" || ns != "pier-system" {
		t.Errorf("webhook service %s/%s, want pier-system/pier-webhook", ns, name)
	}
}

func checkSpeaker(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var d appsv1.DaemonSet
	convert(t, find(t, objs, "DaemonSet", "pier-speaker"), &d)
	s := d.Spec.Template.Spec
	if !s.HostNetwork {
		t.Error("speaker must use hostNetwork")
	}
	checkContainerSecurity(t, "speaker", s, []corev1.Capability{"NET_RAW", "NET_ADMIN"})
	c := s.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	wantEnv := map[string]string{"NODE_NAME": "spec.nodeName", "NODE_IP": "status.hostIP", "POD_NAMESPACE": "metadata.namespace",
		// The Pod owns the ServiceL2Status objects its speaker writes.
		"POD_NAME": "metadata.name", "POD_UID": "metadata.uid"}
	if diff := cmp.Diff(wantEnv, env); diff != "" {
		t.Errorf("speaker downward API env (-want +got):\n%s", diff)
	}
	checkGoMemLimit(t, "speaker", c)
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	vols := map[string]corev1.VolumeSource{}
	for _, v := range s.Volumes {
		vols[v.Name] = v.VolumeSource
	}
	if mounts["memberlist"] != "/etc/pier/memberlist" || vols["memberlist"].Secret == nil {
		t.Errorf("memberlist key Secret not mounted at /etc/pier/memberlist: %v %v", mounts, vols["memberlist"])
	}
	if hp := vols["state"].HostPath; mounts["state"] != "/var/lib/pier" || hp == nil || hp.Path != "/var/lib/pier" {
		t.Errorf("state dir: mount %q, hostPath %+v", mounts["state"], hp)
	}
	// The memberlist key comes as the volume above (the kubelet reads it);
	// the only Secrets the speaker reads through the API are in the
	// namespace of BGP passwords, where its Role is.
	for _, a := range []string{"--memberlist-key-file=/etc/pier/memberlist/key", "--state-dir=/var/lib/pier", "--node-name=$(NODE_NAME)", "--bind-addr=$(NODE_IP)",
		"--bgp-password-namespace=pier-bgp-passwords"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("speaker args %v lack %s", c.Args, a)
		}
	}
}

func checkRelay(t *testing.T, objs []*unstructured.Unstructured, selector map[string]string, add []corev1.Capability) {
	t.Helper()
	if selector == nil {
		for _, o := range objs {
			if o.GetName() == "pier-relay" {
				t.Errorf("relay disabled but %s pier-relay rendered", o.GetKind())
			}
		}
		return
	}
	var d appsv1.DaemonSet
	convert(t, find(t, objs, "DaemonSet", "pier-relay"), &d)
	s := d.Spec.Template.Spec
	if !s.HostNetwork {
		t.Error("relay must use hostNetwork")
	}
	if diff := cmp.Diff(selector, s.NodeSelector); diff != "" {
		t.Errorf("relay nodeSelector (-want +got):\n%s", diff)
	}
	checkContainerSecurity(t, "relay", s, add)
	for _, a := range []string{"--node-name=$(NODE_NAME)", "--namespace=$(POD_NAMESPACE)", "--lease-namespace=pier-relays"} {
		if !slices.Contains(s.Containers[0].Args, a) {
			t.Errorf("relay args %v lack %s", s.Containers[0].Args, a)
		}
	}
}

// checkContainerSecurity: seccomp RuntimeDefault, read-only root, no
// privilege escalation, all capabilities dropped and only add added.
func checkContainerSecurity(t *testing.T, name string, s corev1.PodSpec, add []corev1.Capability) {
	t.Helper()
	if s.SecurityContext == nil || s.SecurityContext.SeccompProfile == nil || s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile is not RuntimeDefault", name)
	}
	if len(s.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(s.Containers))
	}
	sc := s.Containers[0].SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("%s: no container securityContext with capabilities", name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem not read-only", name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", name)
	}
	if diff := cmp.Diff([]corev1.Capability{"ALL"}, sc.Capabilities.Drop); diff != "" {
		t.Errorf("%s: dropped capabilities (-want +got):\n%s", name, diff)
	}
	if diff := cmp.Diff(add, sc.Capabilities.Add); diff != "" {
		t.Errorf("%s: added capabilities (-want +got):\n%s", name, diff)
	}
	// A crash loop then shows the daemon's last error in the Pod's status
	// (kubectl describe, pierctl status).
	for _, c := range slices.Concat(s.InitContainers, s.Containers) {
		if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
			t.Errorf("%s: container %s terminationMessagePolicy %q, want FallbackToLogsOnError", name, c.Name, c.TerminationMessagePolicy)
		}
	}
}

// TestHelmSiteValues checks what the site values change beyond the image:
// pull secrets, placement, pools created at install and monitoring.
func TestHelmSiteValues(t *testing.T) {
	objs := parse(t, helmTemplate(t, "testdata/values-site.yaml"))
	specs := podSpecs(t, objs)
	for name, s := range specs {
		if len(s.ImagePullSecrets) != 1 || s.ImagePullSecrets[0].Name != "site-registry" {
			t.Errorf("%s imagePullSecrets %v", name, s.ImagePullSecrets)
		}
		if p := s.Containers[0].ImagePullPolicy; p != corev1.PullAlways {
			t.Errorf("%s pull policy %s", name, p)
		}
		if !slices.Contains(s.Containers[0].Args, "--log-level=debug") {
			t.Errorf("%s args %v", name, s.Containers[0].Args)
		}
	}
	ctl := specs["pier-controller"]
	if diff := cmp.Diff(map[string]string{"node-role.example.internal/infra": "true"}, ctl.NodeSelector); diff != "" {
		t.Errorf("controller nodeSelector:\n%s", diff)
	}
	if len(ctl.Tolerations) != 1 || ctl.Tolerations[0].Key != "example.internal/infra" {
		t.Errorf("controller tolerations %v", ctl.Tolerations)
	}
	if len(specs["pier-speaker"].Tolerations) != 1 || specs["pier-speaker"].Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("speaker tolerations %v", specs["pier-speaker"].Tolerations)
	}
	if got := ctl.Containers[0].Resources.Requests.Memory().String(); got != "128Mi" {
		t.Errorf("controller memory request %s", got)
	}
	pool := find(t, objs, "IPAddressPool", "bgp")
	if pool.GetNamespace() != "pier-system" || pool.GetLabels()["example.internal/announce"] != "bgp" {
		t.Errorf("pool bgp: namespace %q labels %v", pool.GetNamespace(), pool.GetLabels())
	}
	if n := count(objs, "ServiceMonitor"); n != 3 {
		t.Errorf("%d ServiceMonitors, want 3 (controller, speaker, relay)", n)
	}
	rule := find(t, objs, "PrometheusRule", "pier")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	exprs := map[string]string{}
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			m := r.(map[string]any)
			exprs[m["alert"].(string)] = m["expr"].(string)
		}
	}
	// Each alert reads the metrics Pier exports under these names.
	want := map[string][]string{
		"PierPoolExhausted":         {"pier_allocator_addresses_in_use", "pier_allocator_addresses_total"},
		"PierBGPSessionDown":        {"pier_bgp_session_up"},
		"PierL2AddressWithoutOwner": {"pier_l2_owned_addresses", `pool=~"l2"`},
		"PierConfigStale":           {"rest_client_requests_total", `job="pier-controller-metrics"`},
	}
	for alert, metrics := range want {
		for _, m := range metrics {
			if !strings.Contains(exprs[alert], m) {
				t.Errorf("alert %s: expr %q does not use %s", alert, exprs[alert], m)
			}
		}
	}
}

// TestHelmRefusesLatest: the chart will not render an unpinned image.
func TestHelmRefusesLatest(t *testing.T) {
	_, err := tryRun(nil, helmPath(t), "template", "pier", filepath.Join(repo, "charts", "pier"), "--set", "image.tag=latest")
	if err == nil || !strings.Contains(err.Error(), "not latest") {
		t.Errorf("helm template with image.tag=latest: %v", err)
	}
}

// TestHelmRefusesPasswordsInReleaseNamespace: the speakers may read every
// Secret in the namespace of BGP passwords, so it cannot be Pier's own.
func TestHelmRefusesPasswordsInReleaseNamespace(t *testing.T) {
	_, err := tryRun(nil, helmPath(t), "template", "pier", filepath.Join(repo, "charts", "pier"), "--namespace", "pier-system",
		"--set", "speaker.bgpPasswordNamespace=pier-system")
	if err == nil || !strings.Contains(err.Error(), "must not be the release namespace") {
		t.Errorf("helm template with speaker.bgpPasswordNamespace=pier-system: %v", err)
	}
}

// TestHelmNamespacesWithoutValue: an upgrade with --reuse-values from a
// release before a namespace value existed carries no value for it; the
// chart still renders the namespace and every flag naming it (the relay
// Lease and webhook Secret namespaces rendered empty before).
func TestHelmNamespacesWithoutValue(t *testing.T) {
	for _, tt := range []struct {
		value, namespace string
		flags            map[string]string // Deployment or DaemonSet -> flag
	}{
		{"speaker.bgpPasswordNamespace", "pier-bgp-passwords", map[string]string{
			"pier-speaker": "--bgp-password-namespace=pier-bgp-passwords", "pier-controller": "--bgp-password-namespace=pier-bgp-passwords"}},
		{"relay.leaseNamespace", "pier-relays", map[string]string{
			"pier-relay": "--lease-namespace=pier-relays", "pier-controller": "--relay-lease-namespace=pier-relays"}},
		{"controller.webhook.secretNamespace", "pier-webhook", map[string]string{
			"pier-controller": "--webhook-secret-namespace=pier-webhook"}},
	} {
		t.Run(tt.value, func(t *testing.T) {
			out := run(t, nil, helmPath(t), "template", "pier", filepath.Join(repo, "charts", "pier"), "--namespace", "pier-system",
				"--set", "relay.enabled=true", "--set", tt.value+"=")
			objs := parse(t, out)
			find(t, objs, "Namespace", tt.namespace)
			specs := podSpecs(t, objs)
			for name, flag := range tt.flags {
				if args := specs[name].Containers[0].Args; !slices.Contains(args, flag) {
					t.Errorf("%s args %v lack %s", name, args, flag)
				}
			}
			for _, o := range objs {
				if o.GetKind() != "Namespace" && o.GetNamespace() == "" && namespaced(o.GetKind()) {
					t.Errorf("%s %s rendered without a namespace", o.GetKind(), o.GetName())
				}
			}
		})
	}
}

// namespaced tells the kinds the chart renders that live in a namespace.
func namespaced(kind string) bool {
	switch kind {
	case "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
		"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration":
		return false
	}
	return true
}

// TestHelmRBACMatchesKustomize: the chart grants exactly what the kustomize
// base grants, role by role.
func TestHelmRBACMatchesKustomize(t *testing.T) {
	base := parse(t, kustomize(t, "manifests/base"))
	chart := parse(t, helmTemplate(t, "testdata/values-site.yaml"))
	n := 0
	for _, o := range base {
		if o.GetKind() != "Role" && o.GetKind() != "ClusterRole" {
			continue
		}
		n++
		var want, got rbacv1.ClusterRole // same rules field for Role
		convert(t, o, &want)
		convert(t, find(t, chart, o.GetKind(), o.GetName()), &got)
		if diff := cmp.Diff(want.Rules, got.Rules); diff != "" {
			t.Errorf("%s %s rules differ, kustomize (-) helm (+):\n%s", o.GetKind(), o.GetName(), diff)
		}
	}
	if n != 10 {
		t.Errorf("%d roles in the base, want 10 (a Role and a ClusterRole per component, the controller's Roles for the relays' Leases "+
			"and the webhook's Secret, the speaker's for BGP passwords, the relay's for its ConfigurationStatus)", n)
	}
}

// checkGoMemLimit: the container's Go soft memory limit (GOMEMLIMIT, in
// the runtime's MiB notation) is set and below its memory limit, so that
// the garbage collector works harder before the kernel kills the
// container.
func checkGoMemLimit(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if i < 0 {
		t.Errorf("%s has no GOMEMLIMIT", name)
		return
	}
	mib, ok := strings.CutSuffix(c.Env[i].Value, "MiB")
	n, err := strconv.ParseInt(mib, 10, 64)
	if !ok || err != nil {
		t.Errorf("%s GOMEMLIMIT %q, want <n>MiB", name, c.Env[i].Value)
		return
	}
	limit := c.Resources.Limits.Memory()
	if limit.IsZero() || n<<20 >= limit.Value() {
		t.Errorf("%s GOMEMLIMIT %s is not below its memory limit %v", name, c.Env[i].Value, limit)
	}
}
