package cluster_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pier-lb/pier/e2e/cluster"
)

func TestLoadBalancerServiceRoundTrip(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The kubeconfig file must work on its own, as kubectl would use it.
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)

	dual := corev1.IPFamilyPolicyPreferDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "calls", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilyPolicy: &dual,
			Selector:       map[string]string{"app": "calls"},
			Ports: []corev1.ServicePort{
				{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
				{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 16384, TargetPort: intstr.FromInt32(16384)},
			},
		},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	got, err := cs.CoreV1().Services("default").Get(ctx, "calls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service: %v", err)
	}
	if got.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("type = %q, want LoadBalancer", got.Spec.Type)
	}
	if diff := cmp.Diff(svc.Spec.Ports, got.Spec.Ports, cmpIgnoreNodePorts()); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	// The API server allocates node ports and one ClusterIP per family from
	// the dual-stack service range; the load-balancer status starts empty.
	if len(got.Spec.ClusterIPs) != 2 {
		t.Errorf("clusterIPs = %v, want one per family", got.Spec.ClusterIPs)
	}
	if len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("ingress = %v, want none before a controller assigns one", got.Status.LoadBalancer.Ingress)
	}
}

func cmpIgnoreNodePorts() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".NodePort"
	}, cmp.Ignore())
}

// RBAC is on: an identity with no role binding is refused, and the admin
// identity can grant it access.
func TestRBACEnforced(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{})
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(c.Config)

	nobody := rest.CopyConfig(c.Config)
	nobody.CertData, nobody.KeyData = nil, nil
	nobody.Impersonate = rest.ImpersonationConfig{UserName: "nobody"}
	_, err := kubernetes.NewForConfigOrDie(nobody).CoreV1().Services("default").List(ctx, metav1.ListOptions{})
	// Without a client certificate the request is anonymous; anonymous and
	// unbound users are both forbidden (or unauthorized) under RBAC.
	if !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
		t.Fatalf("list as nobody: err = %v, want forbidden or unauthorized", err)
	}

	imp := rest.CopyConfig(c.Config)
	imp.Impersonate = rest.ImpersonationConfig{UserName: "reader"}
	reader := kubernetes.NewForConfigOrDie(imp)
	if _, err := reader.CoreV1().Services("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list as unbound user: err = %v, want forbidden", err)
	}
	// Not the built-in "view": it is aggregated by kube-controller-manager,
	// which this control plane does not run.
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "service-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}}},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "service-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "reader"}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind role: %v", err)
	}
	// The authorizer's cache picks the binding up asynchronously.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := reader.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("list as bound user never allowed: %v", err)
	}
}

// Two control planes run side by side without sharing anything, and Stop
// removes each one's directory.
func TestConcurrentClusters(t *testing.T) {
	var wg sync.WaitGroup
	clusters := make([]*cluster.Cluster, 2)
	for i := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i] = cluster.ForTest(t, cluster.Options{})
		}()
	}
	wg.Wait()
	if t.Failed() || t.Skipped() { // ForTest skips from its goroutine
		return
	}
	ctx := context.Background()
	for i, c := range clusters {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-" + string(rune('a'+i))}}
		if _, err := kubernetes.NewForConfigOrDie(c.Config).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatalf("cluster %d: create namespace: %v", i, err)
		}
	}
	_, err := kubernetes.NewForConfigOrDie(clusters[1].Config).CoreV1().Namespaces().Get(ctx, "only-in-a", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("namespace of cluster 0 seen in cluster 1: err = %v", err)
	}
	dir := clusters[0].Dir
	clusters[0].Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left after Stop: %v", dir, err)
	}
}
