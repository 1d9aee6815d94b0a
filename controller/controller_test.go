package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller"
)

func TestThousandServices(t *testing.T) {
	e := newEnv(t)
	e.create(pool("bulk", "198.18.0.0/21"))
	e.startController()
	const n = 1000
	createMany(t, e, "default", n)

	seen := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("svc-%04d", i)
		addrs := e.waitAssigned("default", name)
		if len(addrs) != 1 || !inPrefix(addrs[0], mustPrefix("198.18.0.0/21")) {
			t.Fatalf("%s: addresses %v, want one from 198.18.0.0/21", name, addrs)
		}
		if other, dup := seen[addrs[0]]; dup {
			t.Fatalf("%s and %s both got %s", other, name, addrs[0])
		}
		seen[addrs[0]] = name
	}
	var events eventsv1.EventList
	if err := e.c.List(context.Background(), &events, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	withEvent := map[string]bool{}
	for _, ev := range events.Items {
		if ev.Reason == "IPAllocated" {
			withEvent[ev.Regarding.Name] = true
		}
	}
	if len(withEvent) != n {
		t.Errorf("%d Services have an IPAllocated event, want %d", len(withEvent), n)
	}
}

// createMany creates n Services named svc-0000... with a few writers.
func createMany(t testing.TB, e *env, ns string, n int, mutate ...func(*corev1.Service)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := e.c.Create(context.Background(), service(ns, fmt.Sprintf("svc-%04d", i), mutate...)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestAssignmentRules(t *testing.T) {
	e := newEnv(t)
	e.create(pool("l2", "198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"))
	e.create(pool("bgp", "203.0.113.0/24"))
	e.startController()
	dual := ptr.To(corev1.IPFamilyPolicyRequireDualStack)

	t.Run("requested address by annotation", func(t *testing.T) {
		e.create(service("default", "req-annot", annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.210")))
		if got := e.waitAssigned("default", "req-annot"); !cmp.Equal(got, []string{"198.51.100.210"}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("requested address by spec.loadBalancerIP", func(t *testing.T) {
		e.create(service("default", "req-spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "203.0.113.77" }))
		if got := e.waitAssigned("default", "req-spec"); !cmp.Equal(got, []string{"203.0.113.77"}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("requested pool", func(t *testing.T) {
		e.create(service("default", "req-pool", annotate(v1alpha1.AnnotationAddressPool, "bgp")))
		got := e.waitAssigned("default", "req-pool")
		if len(got) != 1 || !inPrefix(got[0], mustPrefix("203.0.113.0/24")) {
			t.Errorf("got %v, want one address of pool bgp", got)
		}
		e.waitFor("default", "req-pool", "annotated", func(s *corev1.Service) bool {
			return s.Annotations[v1alpha1.AnnotationAllocatedFromPool] == "bgp"
		})
	})
	t.Run("dual-stack", func(t *testing.T) {
		e.create(service("default", "dual", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = dual }))
		got := e.waitAssigned("default", "dual")
		if len(got) != 2 || !strings.Contains(got[0], ".") || !strings.Contains(got[1], ":") {
			t.Errorf("got %v, want an IPv4 then an IPv6 address", got)
		}
	})
	t.Run("sharing allowed on different ports", func(t *testing.T) {
		shared := func(s *corev1.Service) {
			annotate(v1alpha1.AnnotationAllowSharedIP, "calls")(s)
			annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.220")(s)
		}
		e.create(service("default", "share-tcp", shared, ports(corev1.ProtocolTCP, 8443)))
		e.create(service("default", "share-udp", shared, ports(corev1.ProtocolUDP, 16384)))
		a, b := e.waitAssigned("default", "share-tcp"), e.waitAssigned("default", "share-udp")
		if !cmp.Equal(a, b) || !cmp.Equal(a, []string{"198.51.100.220"}) {
			t.Errorf("share-tcp %v, share-udp %v, want both 198.51.100.220", a, b)
		}
	})
	t.Run("sharing refused on the same port", func(t *testing.T) {
		e.create(service("default", "share-clash",
			annotate(v1alpha1.AnnotationAllowSharedIP, "calls"),
			annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.220"),
			ports(corev1.ProtocolTCP, 8443)))
		note := e.waitEvent("default", "share-clash", "SharingConflict")
		if !strings.Contains(note, "default/share-tcp") {
			t.Errorf("event %q does not name the Service holding the port", note)
		}
	})
	t.Run("address outside every pool", func(t *testing.T) {
		e.create(service("default", "outside", annotate(v1alpha1.AnnotationLoadBalancerIPs, "192.0.2.99")))
		if note := e.waitEvent("default", "outside", "NotInAnyPool"); !strings.Contains(note, "192.0.2.99") {
			t.Errorf("event %q does not name the address", note)
		}
	})
	t.Run("failed assignment is a condition until fixed", func(t *testing.T) {
		e.create(service("default", "fixed-later", annotate(v1alpha1.AnnotationLoadBalancerIPs, "192.0.2.98")))
		svc := e.waitFor("default", "fixed-later", "condition NotInAnyPool", func(s *corev1.Service) bool {
			c := apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAddressAssigned)
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "NotInAnyPool" && strings.Contains(c.Message, "192.0.2.98")
		})
		svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "198.51.100.231"
		if err := e.c.Update(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
		e.waitFor("default", "fixed-later", "condition Assigned", func(s *corev1.Service) bool {
			return len(ingress(s)) == 1 && apimeta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionAddressAssigned)
		})
	})
	t.Run("a Service waiting for a held address gets it when freed", func(t *testing.T) {
		req := annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.232")
		e.create(service("default", "holder", req))
		e.waitAssigned("default", "holder")
		e.create(service("default", "waiter", req))
		e.waitEvent("default", "waiter", "AddressInUse")
		if err := e.c.Delete(context.Background(), service("default", "holder")); err != nil {
			t.Fatal(err)
		}
		if got := e.waitAssigned("default", "waiter"); !cmp.Equal(got, []string{"198.51.100.232"}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("failed Service that leaves Pier loses the condition", func(t *testing.T) {
		e.create(service("default", "fails-then-leaves", annotate(v1alpha1.AnnotationLoadBalancerIPs, "192.0.2.97")))
		svc := e.waitFor("default", "fails-then-leaves", "condition", func(s *corev1.Service) bool {
			return apimeta.IsStatusConditionFalse(s.Status.Conditions, v1alpha1.ConditionAddressAssigned)
		})
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		if err := e.c.Update(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
		e.waitFor("default", "fails-then-leaves", "no condition", func(s *corev1.Service) bool {
			return apimeta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAddressAssigned) == nil
		})
	})
	t.Run("other load balancer class is left alone", func(t *testing.T) {
		e.create(service("default", "other-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/other") }))
		e.create(service("default", "own-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To(v1alpha1.LoadBalancerClass) }))
		e.waitAssigned("default", "own-class") // processed after other-class
		var svc corev1.Service
		if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "other-class"}, &svc); err != nil {
			t.Fatal(err)
		}
		if got := ingress(&svc); len(got) != 0 {
			t.Errorf("other-class got %v", got)
		}
	})
	t.Run("type change releases the address", func(t *testing.T) {
		req := annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.230")
		e.create(service("default", "becomes-clusterip", req))
		e.waitAssigned("default", "becomes-clusterip")
		svc := e.waitFor("default", "becomes-clusterip", "exists", func(*corev1.Service) bool { return true })
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		if err := e.c.Update(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
		e.waitFor("default", "becomes-clusterip", "cleared", func(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) == 0 })
		e.create(service("default", "takes-it-over", req))
		if got := e.waitAssigned("default", "takes-it-over"); !cmp.Equal(got, []string{"198.51.100.230"}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("deletion releases the address", func(t *testing.T) {
		req := annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.240")
		e.create(service("default", "deleted", req))
		e.waitAssigned("default", "deleted")
		if err := e.c.Delete(context.Background(), service("default", "deleted")); err != nil {
			t.Fatal(err)
		}
		e.create(service("default", "successor", req))
		if got := e.waitAssigned("default", "successor"); !cmp.Equal(got, []string{"198.51.100.240"}) {
			t.Errorf("got %v", got)
		}
	})
}

func TestOnlyOwnClass(t *testing.T) {
	e := newEnv(t)
	e.create(pool("l2", "198.51.100.200-198.51.100.250"))
	e.startController(func(o *controller.ManagerOptions) { o.OnlyOwnClass = true })
	e.create(service("default", "no-class"))
	e.create(service("default", "own-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To(v1alpha1.LoadBalancerClass) }))
	e.waitAssigned("default", "own-class")
	var svc corev1.Service
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "no-class"}, &svc); err != nil {
		t.Fatal(err)
	}
	if got := ingress(&svc); len(got) != 0 {
		t.Errorf("no-class got %v with only-own-class set", got)
	}
}
