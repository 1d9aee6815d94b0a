package controller_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// An orphan whose pool was deleted keeps the pool annotation when its
// Service is reconciled again: the speakers know the orphan's pool only
// from it, and withdraw the address when it is gone. Both ways a Service
// gets an address without naming a pool are covered (one naming a deleted
// pool is refused as an unknown pool, and nothing is written).
func TestOrphanKeepsItsPoolAnnotation(t *testing.T) {
	e := newEnv(t)
	doomed := pool("doomed", "198.51.100.180-198.51.100.181")
	e.create(doomed)
	e.startController()
	e.create(service("default", "auto"))
	e.create(service("default", "pinned", annotateIP("198.51.100.181")))
	held := map[string][]string{"auto": e.waitAssigned("default", "auto"), "pinned": e.waitAssigned("default", "pinned")}
	for name := range held {
		e.waitFor("default", name, "annotated with pool doomed", func(s *corev1.Service) bool {
			return s.Annotations[v1alpha1.AnnotationAllocatedFromPool] == "doomed"
		})
	}
	e.create(pool("edge", "203.0.113.0/30")) // the rest of the configuration stays

	if err := e.c.Delete(context.Background(), doomed); err != nil {
		t.Fatal(err)
	}
	for name := range held {
		e.waitEvent("default", name, "AddressOrphaned")
	}
	for name, want := range held {
		t.Run(name, func(t *testing.T) {
			e.editService(name, func(s *corev1.Service) { s.Labels = map[string]string{"edited": "yes"} })
			// Clearing the status by hand makes the controller write it
			// again: once it shows, a reconcile after the edit has run.
			e.clearStatus(name)
			got := e.waitFor("default", name, "got its address again", func(s *corev1.Service) bool {
				return len(s.Status.LoadBalancer.Ingress) > 0
			})
			if !cmp.Equal(ingress(got), want) {
				t.Errorf("moved from %v to %v", want, ingress(got))
			}
			if p := got.Annotations[v1alpha1.AnnotationAllocatedFromPool]; p != "doomed" {
				t.Errorf("annotation %s = %q after an edit, want %q (the orphan's pool)", v1alpha1.AnnotationAllocatedFromPool, p, "doomed")
			}
		})
	}
}

// editService applies edit to the Service default/name, reading it again
// on a conflict.
func (e *env) editService(name string, edit func(*corev1.Service)) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var svc corev1.Service
		if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &svc); err != nil {
			return err
		}
		edit(&svc)
		return e.c.Update(context.Background(), &svc)
	})
	if err != nil {
		e.t.Fatalf("edit service %s: %v", name, err)
	}
}

// clearStatus empties the ingress of the Service default/name, as someone
// other than Pier might.
func (e *env) clearStatus(name string) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var svc corev1.Service
		if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &svc); err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = nil
		return e.c.Status().Update(context.Background(), &svc)
	})
	if err != nil {
		e.t.Fatalf("clear status of %s: %v", name, err)
	}
}
