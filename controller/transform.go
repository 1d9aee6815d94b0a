package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trimCached drops from every object the manager caches what the
// controller never reads and what can be much of its size: managed fields
// (an entry per writer, a few KiB on a Service) and kubectl's
// last-applied annotation (the object once more). Writes are merge
// patches between the cached copy and its edit, so they never carry, or
// clear, what was dropped.
func trimCached(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	o.SetManagedFields(nil)
	if a := o.GetAnnotations(); a != nil {
		delete(a, corev1.LastAppliedConfigAnnotation)
	}
	return obj, nil
}
