package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Two real controller processes: the leader is killed outright, the standby
// takes the Lease over and keeps assigning; nothing assigned moves.
func TestLeaderFailover(t *testing.T) {
	e := newEnv(t)
	e.create(pool("l2", "198.51.100.200-198.51.100.250"))
	procs := []*proc{e.runController(t), e.runController(t)}
	e.create(service("default", "before"))
	before := e.waitAssigned("default", "before")

	leader, standby := leaderOf(t, procs)
	killed := time.Now()
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-leader.done
	e.create(service("default", "after"))
	e.waitAssigned("default", "after")
	t.Logf("standby assigned a new Service %v after the leader was killed", time.Since(killed).Round(10*time.Millisecond))
	if !strings.Contains(strings.ToLower(standby.output()), "successfully acquired lease") {
		t.Errorf("standby never logged taking the lease:\n%s", standby.output())
	}
	if got := e.waitAssigned("default", "before"); !cmp.Equal(got, before) {
		t.Errorf("before moved from %v to %v across the failover", before, got)
	}
}

// leaderOf waits until exactly one process holds the lease.
func leaderOf(t *testing.T, procs []*proc) (leader, standby *proc) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var leaders []*proc
		for _, p := range procs {
			if p.running() && strings.Contains(strings.ToLower(p.output()), "successfully acquired lease") {
				leaders = append(leaders, p)
			}
		}
		if len(leaders) > 1 {
			t.Fatalf("two leaders at once")
		}
		if len(leaders) == 1 {
			leader = leaders[0]
		}
		return leader != nil, nil
	})
	if err != nil {
		t.Fatal("no process took the lease")
	}
	for _, p := range procs {
		if p != leader {
			standby = p
		}
	}
	return leader, standby
}
