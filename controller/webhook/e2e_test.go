package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/manifests"
)

// TestAgainstAPIServer runs the webhook in URL mode against a real
// kube-apiserver and checks that invalid objects are refused through it,
// naming the field, and that a stopped webhook blocks nothing.
func TestAgainstAPIServer(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{Logger: testLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := manifests.InstallCRDs(ctx, c.Config); err != nil {
		t.Fatal(err)
	}
	kube, cl := clients(t, c)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	addr := freeLoopbackAddr(t)
	s, err := New(Options{
		Kube: kube, Objects: ClientReader{Reader: cl}, Namespace: testNS,
		URL: "https://" + addr, ListenAddress: addr, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, s)
	waitForCABundle(ctx, t, kube)
	err = createUntilRefused(ctx, t, cl, pool("bad", "198.51.100.300/24"))
	wantDenied(t, err, "spec.addresses[0]", "198.51.100.300/24")

	if err := cl.Create(ctx, pool("pool-a", "198.51.100.0/25")); err != nil {
		t.Fatalf("valid pool refused: %v", err)
	}
	wantDenied(t, cl.Create(ctx, bgpAdv("adv", "missing")), "spec.ipAddressPools[0]", `"missing"`)
	wantDenied(t, cl.Create(ctx, pool("pool-b", "198.51.100.64/26")), "spec.addresses[0]", "pool-a")
	other := pool("elsewhere", "198.51.100.200/32")
	other.Namespace = "default"
	wantDenied(t, cl.Create(ctx, other), "metadata.namespace", `only from namespace "pier-system"`)
	if err := cl.Create(ctx, bgpAdv("adv", "pool-a")); err != nil {
		t.Fatalf("valid advertisement refused: %v", err)
	}
	update := &v1alpha1.IPAddressPool{}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: testNS, Name: "pool-a"}, update); err != nil {
		t.Fatal(err)
	}
	update.Spec.Addresses = append(update.Spec.Addresses, "2001:db8::/129")
	wantDenied(t, cl.Update(ctx, update), "spec.addresses[1]", "2001:db8::/129")

	checkRelays(ctx, t, kube, cl)

	// With the webhook down, the failure policy lets writes through.
	stop()
	if err := cl.Create(ctx, pool("pool-c", "198.51.100.128/29")); err != nil {
		t.Fatalf("with the webhook stopped, a valid pool was refused: %v", err)
	}
}

func clients(t *testing.T, c *cluster.Cluster) (kubernetes.Interface, client.Client) {
	t.Helper()
	kube, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return kube, cl
}

// start runs s until the returned function (also called at cleanup) stops
// it and checks that Run ended cleanly.
func start(t *testing.T, s *Server) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

func waitForCABundle(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		vwc, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, DefaultConfigurationName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && len(vwc.Webhooks) == 1 && len(vwc.Webhooks[0].ClientConfig.CABundle) > 0, err
	})
	if err != nil {
		t.Fatalf("waiting for the caBundle: %v", err)
	}
}

// createUntilRefused creates obj until the API server, once it has loaded
// the new webhook configuration, refuses it; objects admitted before that
// are deleted again.
func createUntilRefused(ctx context.Context, t *testing.T, cl client.Client, obj client.Object) error {
	t.Helper()
	var refusal error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		o := obj.DeepCopyObject().(client.Object)
		err := cl.Create(ctx, o)
		if err == nil {
			return false, cl.Delete(ctx, o)
		}
		refusal = err
		return true, nil
	})
	if err != nil {
		t.Fatalf("the webhook never refused %s: %v", obj.GetName(), err)
	}
	return refusal
}

// wantDenied checks err is the webhook's 422 naming field, with a message
// containing each of parts.
func wantDenied(t *testing.T, err error, field string, parts ...string) {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
		t.Fatalf("want a 422 Invalid from the webhook, got %v", err)
	}
	msg := err.Error()
	for _, p := range append([]string{fmt.Sprintf("admission webhook %q denied the request", WebhookName), field}, parts...) {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not contain %q", msg, p)
		}
	}
	var fields []string
	if d := status.Status().Details; d != nil {
		for _, c := range d.Causes {
			fields = append(fields, c.Field)
		}
	}
	if len(fields) != 1 || fields[0] != field {
		t.Errorf("causes name fields %v, want [%s]", fields, field)
	}
}
