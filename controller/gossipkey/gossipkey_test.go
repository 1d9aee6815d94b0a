package gossipkey

import (
	"bytes"
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pier-lb/pier/e2e/cluster"
)

// TestEnsure against a real API server: the first call creates a 32 byte
// key, later ones (another replica, a restart) keep it.
func TestEnsure(t *testing.T) {
	c := cluster.ForTest(t, cluster.Options{})
	kube := kubernetes.NewForConfigOrDie(c.Config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cr, err := New(Options{Kube: kube, Namespace: "default", Name: "pier-memberlist"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cr.Run(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := kube.CoreV1().Secrets("default").Get(ctx, "pier-memberlist", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(first.Data[KeyName]); n != 32 {
		t.Fatalf("key of %d bytes, want 32", n)
	}
	created, err := cr.Ensure(ctx)
	if err != nil || created {
		t.Fatalf("second Ensure: created %v, err %v; want the Secret kept", created, err)
	}
	again, err := kube.CoreV1().Secrets("default").Get(ctx, "pier-memberlist", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Data[KeyName], again.Data[KeyName]) {
		t.Error("the key changed")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{Namespace: "x", Name: "y"}); err == nil {
		t.Error("New without Kube: no error")
	}
}
