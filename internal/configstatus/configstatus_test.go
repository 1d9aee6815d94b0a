package configstatus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/manifests"
)

func TestProblems(t *testing.T) {
	peer := &config.Error{Kind: config.KindBGPPeer, Namespace: "pier-system", Name: "r1", Field: "spec.peerASN", Message: "must be 1-4294967295"}
	pool := &config.Error{Kind: config.KindIPAddressPool, Namespace: "pier-system", Name: "p", Field: "spec.addresses[0]", Message: "not a CIDR"}
	for _, tc := range []struct {
		name string
		err  error
		want []v1alpha1.ConfigurationProblem
	}{
		{"valid", nil, nil},
		{"joined", errors.Join(pool, peer), []v1alpha1.ConfigurationProblem{
			{Kind: "IPAddressPool", Namespace: "pier-system", Name: "p", Field: "spec.addresses[0]", Message: "not a CIDR"},
			{Kind: "BGPPeer", Namespace: "pier-system", Name: "r1", Field: "spec.peerASN", Message: "must be 1-4294967295"},
		}},
		{"wrapped", fmt.Errorf("parse: %w", peer), []v1alpha1.ConfigurationProblem{
			{Kind: "BGPPeer", Namespace: "pier-system", Name: "r1", Field: "spec.peerASN", Message: "must be 1-4294967295"},
		}},
		{"not a config error", errors.New("boom"), []v1alpha1.ConfigurationProblem{{Message: "boom"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Problems(tc.err)); diff != "" {
				t.Errorf("Problems (-want +got):\n%s", diff)
			}
		})
	}
	if got, want := Describe(Problems(peer)[0]), peer.Error(); got != want {
		t.Errorf("Describe = %q, want config.Error's %q", got, want)
	}
}

// apiClient is a client of a real API server with Pier's CRDs and
// namespace.
func apiClient(t *testing.T) client.Client {
	t.Helper()
	cl := cluster.ForTest(t, cluster.Options{})
	ctx := context.Background()
	if err := manifests.InstallCRDs(ctx, cl.Config); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cl.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pier-system"}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// A fault shows in the node's object with kind, object and field, clears
// when fixed, and an unchanged result writes nothing.
func TestWriterAgainstAPIServer(t *testing.T) {
	c := apiClient(t)
	w, err := New(Options{Client: c, Namespace: "pier-system", Node: "node1", Component: v1alpha1.ComponentSpeaker,
		Every: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	read := func() (*v1alpha1.ConfigurationStatus, error) {
		var obj v1alpha1.ConfigurationStatus
		err := c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "speaker-node1"}, &obj)
		return &obj, err
	}
	bad := &config.Error{Kind: config.KindBGPPeer, Namespace: "pier-system", Name: "r1", Field: "spec.holdTime", Message: "must be 0 or at least 3s"}
	w.Set(errors.Join(bad))
	var rv string
	lab.Poll(t, "the fault in the status", 20*time.Millisecond, 30*time.Second, func() error {
		obj, err := read()
		if err != nil {
			return err
		}
		want := v1alpha1.ConfigurationStatusStatus{Node: "node1", Component: "speaker", Valid: false,
			Summary: bad.Error(), Problems: []v1alpha1.ConfigurationProblem{
				{Kind: "BGPPeer", Namespace: "pier-system", Name: "r1", Field: "spec.holdTime", Message: "must be 0 or at least 3s"}}}
		got := obj.Status
		got.LastChange = nil
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("status (-want +got):\n%s", diff)
		}
		if obj.Labels[v1alpha1.LabelNode] != "node1" || obj.Labels[v1alpha1.LabelComponent] != "speaker" {
			return fmt.Errorf("labels %v", obj.Labels)
		}
		rv = obj.ResourceVersion
		return nil
	})

	// The same result again: no write (the resource version stays).
	w.Set(fmt.Errorf("again: %w", bad))
	w.Set(nil)
	lab.Poll(t, "valid again", 20*time.Millisecond, 30*time.Second, func() error {
		obj, err := read()
		if err != nil {
			return err
		}
		if !obj.Status.Valid || obj.Status.Problems != nil || obj.Status.Summary != "" {
			return fmt.Errorf("status %+v", obj.Status)
		}
		if obj.ResourceVersion == rv {
			return errors.New("not written yet")
		}
		rv = obj.ResourceVersion
		return nil
	})
	w.Set(nil)
	w.Set(nil)
	if err := w.write(ctx); err != nil { // a round, as Run makes them
		t.Fatal(err)
	}
	if obj, err := read(); err != nil || obj.ResourceVersion != rv {
		t.Errorf("unchanged result written again: %v, resource version %s -> %s", err, rv, obj.ResourceVersion)
	}
}
