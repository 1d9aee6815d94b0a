package speaker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestOwnStatus(t *testing.T) {
	pod := podOwner("pier-speaker-abcde", "uid-new")
	old := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "pier-speaker-fghij", UID: "uid-old"}
	for _, tc := range []struct {
		name    string
		owner   *metav1.OwnerReference
		have    []metav1.OwnerReference
		changed bool
		want    []metav1.OwnerReference
	}{
		{"outside a Pod", nil, nil, false, nil},
		{"new object", pod, nil, true, []metav1.OwnerReference{*pod}},
		{"already ours", pod, []metav1.OwnerReference{*pod}, false, []metav1.OwnerReference{*pod}},
		{"previous speaker Pod's", pod, []metav1.OwnerReference{old}, true, []metav1.OwnerReference{*pod}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Speaker{opts: Options{Owner: tc.owner}}
			obj := &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{OwnerReferences: tc.have}}
			if got := s.own(obj); got != tc.changed {
				t.Errorf("own() = %t, want %t", got, tc.changed)
			}
			if diff := cmp.Diff(tc.want, obj.OwnerReferences); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
		})
	}
	if podOwner("", "uid") != nil || podOwner("name", "") != nil {
		t.Error("an owner without both name and UID")
	}
}
