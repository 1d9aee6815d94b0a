package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// history records every address set each Service (by UID) ever showed.
type history struct {
	mu       sync.Mutex
	seen     map[types.UID][]string
	names    map[types.UID]string
	assigned atomic.Int64
}

func (h *history) observe(obj any) {
	svc, ok := obj.(*corev1.Service)
	if !ok || len(svc.Status.LoadBalancer.Ingress) == 0 {
		return
	}
	addrs := strings.Join(ingress(svc), ",")
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen[svc.UID]) == 0 {
		h.assigned.Add(1)
	}
	if !slices.Contains(h.seen[svc.UID], addrs) {
		h.seen[svc.UID] = append(h.seen[svc.UID], addrs)
		h.names[svc.UID] = svc.Name
	}
}

func (e *env) watchHistory(t *testing.T, ns string) *history {
	h := &history{seen: map[types.UID][]string{}, names: map[types.UID]string{}}
	cs := kubernetes.NewForConfigOrDie(e.cluster.Config)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Services().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    h.observe,
		UpdateFunc: func(_, obj any) { h.observe(obj) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return h
}

// Restart the controller 20 times while Services come and go: an address,
// once shown, never changes for a Service that keeps existing.
func TestRestartsNeverMoveAddresses(t *testing.T) {
	e := newEnv(t)
	e.create(pool("churn", "198.18.4.0/22"))
	e.create(&corev1.Namespace{ObjectMeta: metaName("churn")})
	h := e.watchHistory(t, "churn")

	ctx, stopChurn := context.WithCancel(context.Background())
	var churned sync.WaitGroup
	var churnDone atomic.Bool // all 600 created: no new assignment to wait for
	churned.Go(func() { churn(ctx, t, e, "churn", 600); churnDone.Store(true) })

	for r := range 20 {
		stop := e.startController()
		before := h.assigned.Load()
		err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return h.assigned.Load() >= before+5 || churnDone.Load(), nil
		})
		if err != nil {
			t.Fatalf("restart %d: no progress (%d assigned)", r, h.assigned.Load())
		}
		stop()
	}
	stopChurn()
	churned.Wait()

	e.startController()
	var live corev1.ServiceList
	if err := e.c.List(context.Background(), &live, inNS("churn")); err != nil {
		t.Fatal(err)
	}
	for _, svc := range live.Items {
		e.waitAssigned("churn", svc.Name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid, sets := range h.seen {
		if len(sets) > 1 {
			t.Errorf("service %s (%s) moved: %v", h.names[uid], uid, sets)
		}
	}
	t.Logf("%d services assigned across 20 restarts, %d live at the end", h.assigned.Load(), len(live.Items))
}

// churn creates up to n Services and, every third one, deletes one created
// 30 earlier (by then usually assigned), so freed addresses get reused.
func churn(ctx context.Context, t *testing.T, e *env, ns string, n int) {
	for i := 0; i < n && ctx.Err() == nil; i++ {
		name := fmt.Sprintf("churn-%04d", i)
		if err := e.c.Create(ctx, service(ns, name)); err != nil && ctx.Err() == nil {
			t.Errorf("create %s: %v", name, err)
			return
		}
		if i%3 == 2 && i >= 30 {
			victim := service(ns, fmt.Sprintf("churn-%04d", i-30))
			if err := e.c.Delete(ctx, victim); err != nil && ctx.Err() == nil {
				t.Errorf("delete %s: %v", victim.Name, err)
				return
			}
		}
	}
}
