package l2mode

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// Deleting a pool that an L2Advertisement names leaves that advertisement
// at fault, and nothing else: Services of the other pools created and
// deleted afterwards are announced and withdrawn (issue 14, finding 4).
// An address an edit leaves outside every pool, or whose pool is deleted,
// stays announced until its Service lets it go, also across edits of the
// Service, and is not handed out again until it is back in a pool
// (finding 5).
func TestConfigFaultsKeepTheRestAnnounced(t *testing.T) {
	env := up(t, kubelab.Options{Nodes: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	create := func(obj client.Object) {
		t.Helper()
		if err := env.Pier.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	del := func(obj client.Object) {
		t.Helper()
		if err := env.Pier.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: kubelab.PierNamespace}
	}
	doomed := &v1alpha1.IPAddressPool{ObjectMeta: meta("doomed"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.180-198.51.100.184"}}}
	edge := &v1alpha1.IPAddressPool{ObjectMeta: meta("edge"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.190-198.51.100.191"}}}
	create(doomed)
	create(edge)
	create(&v1alpha1.L2Advertisement{ObjectMeta: meta("doomed"), Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"doomed"}}})

	old := v4Service(t, env, "old", v1alpha1.AnnotationAddressPool, "lab-l2")
	kept := v4Service(t, env, "kept", v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.190")
	stranded := v4Service(t, env, "stranded", v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.181")
	waitARP(t, env, old.addr, "old", func(string) bool { return true })
	waitARP(t, env, kept.addr, "kept", func(string) bool { return true })
	waitARP(t, env, stranded.addr, "stranded", func(string) bool { return true })

	t.Run("deleted referenced pool", func(t *testing.T) {
		del(doomed)
		fresh := v4Service(t, env, "fresh", v1alpha1.AnnotationAddressPool, "lab-l2")
		del(old.svc)
		waitARP(t, env, fresh.addr, "fresh, created after the pool was deleted,", func(string) bool { return true })
		waitSilent(t, env, old.addr, "old, deleted after the pool was deleted,")
		waitEvent(t, env, "stranded", "AddressOrphaned", stranded.addr.String())
		if macs := kubelab.ARPReplies(ctx, env.Site.Router, "eth1", stranded.addr, 3); len(macs) == 0 {
			t.Errorf("orphaned %s, its pool deleted, is no longer announced", stranded.addr)
		}
	})

	t.Run("orphan stays announced until released", func(t *testing.T) {
		setAddrs := func(addrs ...string) {
			t.Helper()
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var p v1alpha1.IPAddressPool
				if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(edge), &p); err != nil {
					return err
				}
				p.Spec.Addresses = addrs
				return env.Pier.Update(ctx, &p)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		setAddrs("198.51.100.191/32") // kept's .190 falls outside
		waitEvent(t, env, "kept", "AddressOrphaned", kept.addr.String())
		// Speakers apply changes in order: once a Service created after the
		// edit is announced, they have seen the edit.
		probe := v4Service(t, env, "probe", v1alpha1.AnnotationAddressPool, "lab-l2")
		waitARP(t, env, probe.addr, "probe", func(string) bool { return true })
		if macs := kubelab.ARPReplies(ctx, env.Site.Router, "eth1", kept.addr, 3); len(macs) == 0 {
			t.Errorf("orphaned %s is no longer announced", kept.addr)
		}

		// An edit of the Service makes the controller reconcile it again;
		// the pool annotation, the only record of an orphan's pool, stays
		// and the address stays announced (stranded's pool is deleted,
		// kept's no longer holds it).
		orphans := map[*v4svc]string{&kept: "edge", &stranded: "doomed"}
		for o := range orphans {
			addLabel(ctx, t, env, o.svc)
		}
		// The controller takes up Services in the order it learns of them,
		// and the speakers apply changes in order: once a Service created
		// after the edits is announced, both have seen the edits. (Were a
		// reconcile of an edit still running then, a regression could slip
		// through this check once; a correct build never fails it.)
		after := v4Service(t, env, "after-edits", v1alpha1.AnnotationAddressPool, "lab-l2")
		waitARP(t, env, after.addr, "after-edits", func(string) bool { return true })
		for o, pool := range orphans {
			if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(o.svc), o.svc); err != nil {
				t.Fatal(err)
			}
			if got := o.svc.Annotations[v1alpha1.AnnotationAllocatedFromPool]; got != pool {
				t.Errorf("%s: pool annotation %q after an edit, want %q", o.svc.Name, got, pool)
			}
			if macs := kubelab.ARPReplies(ctx, env.Site.Router, "eth1", o.addr, 3); len(macs) == 0 {
				t.Errorf("orphaned %s of %s is no longer announced after an edit", o.addr, o.svc.Name)
			}
		}
		del(stranded.svc)
		waitSilent(t, env, stranded.addr, "stranded, deleted while orphaned,")

		del(kept.svc)
		waitSilent(t, env, kept.addr, "kept, deleted while orphaned,")
		again := service("again", v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.190")
		create(again)
		waitEvent(t, env, "again", "NotInAnyPool", "")

		setAddrs("198.51.100.190-198.51.100.191") // back in a pool
		if got := waitAddr(t, env, again); got != kept.addr {
			t.Errorf("again got %s, want %s back in its pool", got, kept.addr)
		}
	})
}

// addLabel adds a label to svc, reading it again on a conflict.
func addLabel(ctx context.Context, t *testing.T, env *kubelab.Env, svc *corev1.Service) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels["edited"] = "yes"
		return env.Pier.Update(ctx, svc)
	})
	if err != nil {
		t.Fatalf("label %s: %v", svc.Name, err)
	}
}

type v4svc struct {
	svc  *corev1.Service
	addr netip.Addr
}

func service(name, annotation, value string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{annotation: value}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "calls-tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)}},
		},
	}
}

// v4Service creates an IPv4 LoadBalancer Service with one annotation and
// waits for its address.
func v4Service(t *testing.T, env *kubelab.Env, name, annotation, value string) v4svc {
	t.Helper()
	svc := service(name, annotation, value)
	if err := env.Pier.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return v4svc{svc, waitAddr(t, env, svc)}
}

func waitAddr(t *testing.T, env *kubelab.Env, svc *corev1.Service) netip.Addr {
	t.Helper()
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return false, err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && a.Is4() {
				addr = a
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("service %s got no address", svc.Name)
	}
	return addr
}

// waitSilent polls until no node answers ARP for addr.
func waitSilent(t *testing.T, env *kubelab.Env, addr netip.Addr, what string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return len(kubelab.ARPReplies(ctx, env.Site.Router, "eth1", addr, 2)) == 0, nil
	})
	if err != nil {
		t.Errorf("%s %s is still answered", what, addr)
	}
}
