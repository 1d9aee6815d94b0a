package webhook

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/manifests"
)

// TestSecretNamespace: with SecretNamespace the certificate Secret lives
// there and not beside Pier's configuration, whose Secrets the speakers
// may read.
func TestSecretNamespace(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{Logger: testLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := manifests.InstallCRDs(ctx, c.Config); err != nil {
		t.Fatal(err)
	}
	kube, cl := clients(t, c)
	for _, ns := range []string{testNS, "pier-webhook"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeLoopbackAddr(t)
	s, err := New(Options{
		Kube: kube, Objects: ClientReader{Reader: cl}, Namespace: testNS, SecretNamespace: "pier-webhook",
		URL: "https://" + addr, ListenAddress: addr, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	waitForCABundle(ctx, t, kube)
	if _, err := kube.CoreV1().Secrets("pier-webhook").Get(ctx, DefaultSecretName, metav1.GetOptions{}); err != nil {
		t.Errorf("certificate Secret in pier-webhook: %v", err)
	}
	if _, err := kube.CoreV1().Secrets(testNS).Get(ctx, DefaultSecretName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("certificate Secret in %s: %v, want NotFound", testNS, err)
	}
}
