package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cache keeps what the controller reads (its annotations, the spec,
// the status) and drops managed fields and kubectl's copy of the object.
func TestTrimCached(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "calls",
			Annotations: map[string]string{
				corev1.LastAppliedConfigAnnotation: `{"kind":"Service"}`,
				"pier.dev/address-pool":            "public",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
		},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.1"}}}},
	}
	want := svc.DeepCopy()
	want.ManagedFields = nil
	want.Annotations = map[string]string{"pier.dev/address-pool": "public"}
	got, err := trimCached(svc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trimmed Service (-want +got):\n%s", diff)
	}
	bare := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}
	if got, err := trimCached(bare.DeepCopy()); err != nil || !cmp.Equal(got, bare) {
		t.Errorf("a Service without annotations: got %v, %v", got, err)
	}
	if got, err := trimCached("not an object"); err != nil || got != "not an object" {
		t.Errorf("a value that is no object: got %v, %v", got, err)
	}
}
