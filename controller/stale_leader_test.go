package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The leader is frozen (SIGSTOP) in the middle of a burst of Service
// creations and deletions, the standby takes the Lease over, and the old
// leader is thawed (SIGCONT) with its stale view and any writes it had
// prepared. No Service's address ever changes, and no two live Services
// end up on one address. Three frozen leaders, each round with a fresh
// standby.
func TestStaleLeaderNeverMovesAddresses(t *testing.T) {
	e := newEnv(t)
	e.create(pool("stale", "198.18.8.0/22"))
	e.create(&corev1.Namespace{ObjectMeta: metaName("stale")})
	h := e.watchHistory(t, "stale")

	ctx, stopChurn := context.WithCancel(context.Background())
	var churned sync.WaitGroup
	churned.Go(func() { storm(ctx, t, e, "stale") })

	procs := []*proc{e.runController(t), e.runController(t)}
	const freezes, attempts = 3, 6
	for round, frozen := 0, 0; frozen < freezes; round++ {
		if round == attempts {
			t.Fatalf("only %d of %d leaders lived until their freeze: the API server too slow for the Lease timers", frozen, attempts)
		}
		leader, standby := leaderOf(t, procs)
		progress(t, h, 10, "leader")
		if err := leader.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			// On a loaded machine the API server may answer a renewal
			// too late: the leader gives the Lease up and exits on its
			// own, a failover too. Freeze the next one.
			t.Logf("round %d: the leader exited before the freeze (%v)", round, err)
			procs = []*proc{standby, e.runController(t)}
			continue
		}
		waitOutput(t, standby, "successfully acquired lease")
		progress(t, h, 10, "standby")
		if err := leader.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		// The old leader finds its Lease gone and exits; a new standby
		// replaces it for the next round.
		select {
		case <-leader.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: the thawed leader kept running", round)
		}
		procs = []*proc{standby, e.runController(t)}
		frozen++
	}
	stopChurn()
	churned.Wait()

	var live corev1.ServiceList
	if err := e.c.List(context.Background(), &live, inNS("stale")); err != nil {
		t.Fatal(err)
	}
	holders := map[string]string{}
	for _, svc := range live.Items {
		for _, a := range e.waitAssigned("stale", svc.Name) {
			if other, ok := holders[a]; ok {
				t.Errorf("%s held by both %s and %s", a, other, svc.Name)
			}
			holders[a] = svc.Name
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid, sets := range h.seen {
		if len(sets) > 1 {
			t.Errorf("service %s (%s) moved: %v", h.names[uid], uid, sets)
		}
	}
	t.Logf("%d services assigned across 3 frozen leaders, %d live at the end", h.assigned.Load(), len(live.Items))
}

// progress waits for n more Services to get an address.
func progress(t *testing.T, h *history, n int64, who string) {
	t.Helper()
	before := h.assigned.Load()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return h.assigned.Load() >= before+n, nil
	})
	if err != nil {
		t.Fatalf("%s: no progress (%d assigned)", who, h.assigned.Load())
	}
}

func waitOutput(t *testing.T, p *proc, s string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(strings.ToLower(p.output()), s), nil
	})
	if err != nil {
		t.Fatalf("process %d never logged %q", p.cmd.Process.Pid, s)
	}
}

// storm creates a Service every few milliseconds until ctx ends and deletes
// the one created 100 before, so freed addresses get reused all the time.
func storm(ctx context.Context, t *testing.T, e *env, ns string) {
	tick := time.NewTicker(5 * time.Millisecond) // pacing the load, not a wait for correctness
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		name := fmt.Sprintf("storm-%05d", i)
		if err := e.c.Create(ctx, service(ns, name)); err != nil && ctx.Err() == nil {
			t.Errorf("create %s: %v", name, err)
			return
		}
		if i >= 100 {
			victim := service(ns, fmt.Sprintf("storm-%05d", i-100))
			if err := e.c.Delete(ctx, victim); err != nil && ctx.Err() == nil {
				t.Errorf("delete %s: %v", victim.Name, err)
				return
			}
		}
	}
}
