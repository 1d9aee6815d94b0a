package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/manifests"
)

const pierNS = "pier-system"

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // the pier-controller built by controllerBinary
	}
	os.Exit(code)
}

// env is a real control plane with Pier's CRDs and namespace.
type env struct {
	t       testing.TB
	cluster *cluster.Cluster
	c       client.Client
}

func newEnv(t testing.TB, opts ...cluster.Options) *env {
	t.Helper()
	cl := cluster.ForTest(t, append(opts, cluster.Options{})[0])
	ctx := context.Background()
	if err := manifests.InstallCRDs(ctx, cl.Config); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	c, err := client.New(cl.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: cl, c: c}
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pierNS}})
	return e
}

func (e *env) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(context.Background(), obj); err != nil {
		e.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// startController runs an in-process controller until the returned stop is
// called (a restart is stop, then start again).
func (e *env) startController(mutate ...func(*controller.ManagerOptions)) (stop func()) {
	e.t.Helper()
	opts := controller.ManagerOptions{
		Config:      e.cluster.Config,
		Namespace:   pierNS,
		MetricsAddr: "0",
		HealthAddr:  "0",
		Registerer:  prometheus.NewRegistry(),
		Logger:      slog.New(slog.DiscardHandler),
	}
	for _, m := range mutate {
		m(&opts)
	}
	mgr, _, err := controller.NewManager(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			e.t.Errorf("controller: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	e.t.Cleanup(stop)
	return stop
}

func pool(name string, addrs ...string) *v1alpha1.IPAddressPool {
	return &v1alpha1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pierNS},
		Spec:       v1alpha1.IPAddressPoolSpec{Addresses: addrs},
	}
}

func service(ns, name string, mutate ...func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "calls", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)}},
		},
	}
	for _, m := range mutate {
		m(svc)
	}
	return svc
}

func annotate(k, v string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func ports(proto corev1.Protocol, port int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "p", Protocol: proto, Port: port, TargetPort: intstr.FromInt32(port)}}
	}
}

// ingress returns the addresses in a Service's status.
func ingress(svc *corev1.Service) []string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// waitFor polls the Service until cond holds, or fails the test.
func (e *env) waitFor(ns, name string, what string, cond func(*corev1.Service) bool) *corev1.Service {
	e.t.Helper()
	var svc corev1.Service
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(&svc), nil
	})
	if err != nil {
		e.t.Fatalf("service %s/%s never %s: status %v", ns, name, what, ingress(&svc))
	}
	return &svc
}

func (e *env) waitAssigned(ns, name string) []string {
	e.t.Helper()
	svc := e.waitFor(ns, name, "got an address", func(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) > 0 })
	return ingress(svc)
}

// waitEvent waits for an event with reason on the named object and returns
// its note.
func (e *env) waitEvent(ns, name, reason string) string {
	e.t.Helper()
	return e.waitEventIn(ns, name, reason)
}

func (e *env) waitEventIn(ns, name, reason string) string {
	e.t.Helper()
	var note string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := e.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, ev := range list.Items {
			if ev.Regarding.Name == name && ev.Reason == reason {
				note = ev.Note
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		e.t.Fatalf("no %s event for %s/%s: %v", reason, ns, name, err)
	}
	return note
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func inPrefix(addr string, p netip.Prefix) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && p.Contains(a)
}

var _ = fmt.Sprintf

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

func inNS(ns string) client.ListOption { return client.InNamespace(ns) }
