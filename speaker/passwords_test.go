package speaker

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// The speaker reads BGP passwords from their own namespace only: a Secret
// of the same name in Pier's namespace is neither read nor used.
func TestPasswordsFromTheirNamespace(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	secret := func(ns, pw string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "md5", Namespace: ns}, Data: map[string][]byte{"password": []byte(pw)}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: "pier-system"},
			Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "198.51.100.1",
				PasswordSecret: &v1alpha1.SecretKeyRef{Name: "md5"}}},
		secret("pier-system", "not-this-one"),
		secret("site-bgp", "s3cret"),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}},
	).Build()
	s, err := New(Options{
		NodeName: "node1", Namespace: "pier-system", PasswordNamespace: "site-bgp",
		Reader: c, Synced: func() bool { return true },
		Members: NewFakeMembers("node1"), L2: &FakeL2{},
		StateFile: t.TempDir() + "/state.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, s.refreshTargets(context.Background()))
	if diff := cmp.Diff(map[string]string{"site-bgp/md5/password": "s3cret"}, s.passwords); diff != "" {
		t.Errorf("passwords read (-want +got):\n%s", diff)
	}
	if len(s.bgp.Peers) != 1 || s.bgp.Peers[0].Password != "s3cret" {
		t.Errorf("peer r1 = %+v (waiting %q), want the password of site-bgp/md5", s.bgp.Peers, s.bgp.Waiting)
	}
}
