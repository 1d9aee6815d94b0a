package speaker

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// partialEnv is a speaker reading a fake API cache that holds two pools,
// an advertisement of every pool and one that names pool b only.
func partialEnv(t *testing.T) (*Speaker, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "pier-system"} }
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&v1alpha1.IPAddressPool{ObjectMeta: meta("a"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.0/26"}}},
		&v1alpha1.IPAddressPool{ObjectMeta: meta("b"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.64/26"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: meta("all")},
		&v1alpha1.L2Advertisement{ObjectMeta: meta("only-b"), Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"b"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}},
	).Build()
	s, err := New(Options{
		NodeName: "node1", Namespace: "pier-system",
		Reader: c, Synced: func() bool { return true },
		Members: NewFakeMembers("node1"), L2: &FakeL2{},
		StateFile: t.TempDir() + "/state.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func targetAddrs(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Addr.String())
	}
	return out
}

// Deleting a pool that an advertisement names leaves that reference out:
// Services of the other pools keep being announced and withdrawn, and the
// fault is counted.
func TestDeletedReferencedPoolKeepsApplying(t *testing.T) {
	s, c := partialEnv(t)
	ctx := context.Background()
	svc := func(name, addr string) *corev1.Service {
		x := lbService(name, addr)
		return &x
	}
	mustDo(t, c.Create(ctx, svc("old", "198.51.100.10")))
	mustDo(t, s.refreshTargets(ctx))
	if diff := cmp.Diff([]string{"198.51.100.10"}, targetAddrs(s.targets)); diff != "" {
		t.Fatalf("before the deletion (-want +got):\n%s", diff)
	}

	mustDo(t, c.Delete(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "pier-system"}}))
	mustDo(t, c.Create(ctx, svc("new", "198.51.100.20")))
	mustDo(t, c.Delete(ctx, svc("old", "198.51.100.10")))
	if err := s.refreshTargets(ctx); err != nil {
		t.Errorf("refresh with an advertisement naming a deleted pool: %v", err)
	}
	if diff := cmp.Diff([]string{"198.51.100.20"}, targetAddrs(s.targets)); diff != "" {
		t.Errorf("after deleting pool b, creating new and deleting old (-want +got):\n%s", diff)
	}
	if got := s.invalid["L2Advertisement"]; got != 1 {
		t.Errorf("invalid L2Advertisements counted %d, want 1", got)
	}
}

// An address left outside every pool by an edit stays announced as a
// member of the pool its Service's annotation names, until the Service
// lets it go.
func TestOrphanStaysAnnounced(t *testing.T) {
	s, c := partialEnv(t)
	ctx := context.Background()
	x := lbService("kept", "198.51.100.70")
	x.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: "b"}
	mustDo(t, c.Create(ctx, &x))
	mustDo(t, s.refreshTargets(ctx))
	var b v1alpha1.IPAddressPool
	mustDo(t, c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "b"}, &b))
	b.Spec.Addresses = []string{"198.51.100.96/27"} // .70 falls outside
	mustDo(t, c.Update(ctx, &b))
	mustDo(t, s.refreshTargets(ctx))
	if diff := cmp.Diff([]string{"198.51.100.70"}, targetAddrs(s.targets)); diff != "" {
		t.Errorf("orphan of an edited pool (-want +got):\n%s", diff)
	}
	mustDo(t, c.Delete(ctx, &b)) // gone: the advertisement that last applied keeps it
	s.refreshTargets(ctx)        // only-b now names a deleted pool
	if diff := cmp.Diff([]string{"198.51.100.70"}, targetAddrs(s.targets)); diff != "" {
		t.Errorf("orphan of a deleted pool (-want +got):\n%s", diff)
	}
	mustDo(t, c.Delete(ctx, &x))
	s.refreshTargets(ctx)
	if len(s.targets) != 0 {
		t.Errorf("released orphan still targeted: %v", targetAddrs(s.targets))
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
