package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pier-lb/pier/e2e/lab"
)

// clockEnv is an announcer (not running: no gobgp) on a fake clock with
// one configured peer, r1 at 198.51.100.1, logging into a buffer.
func clockEnv(t *testing.T, warnAfter time.Duration) (*Announcer, *clocktesting.FakeClock, *lab.SyncBuffer) {
	t.Helper()
	logs := &lab.SyncBuffer{}
	clk := clocktesting.NewFakeClock(time.Date(2020, 3, 4, 5, 6, 7, 0, time.UTC))
	a, err := New(Options{RouterID: netip.MustParseAddr("198.51.100.11"), Clock: clk, WarnAfter: warnAfter,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64513, PeerASN: 64512}
	if err := p.normalize(); err != nil {
		t.Fatal(err)
	}
	a.sessions.add(&p)
	return a, clk, logs
}

// stateEvent is gobgp's word that the session with addr entered st.
func stateEvent(addr string, st api.PeerState_SessionState) *api.WatchEventResponse {
	return &api.WatchEventResponse{Event: &api.WatchEventResponse_Peer{Peer: &api.WatchEventResponse_PeerEvent{
		Type: api.WatchEventResponse_PeerEvent_STATE,
		Peer: &api.Peer{State: &api.PeerState{NeighborAddress: addr, SessionState: st}},
	}}}
}

// The status reports when a state was entered and how long the session
// has been up, on the announcer's clock.
func TestStatusTimesFollowTheClock(t *testing.T) {
	a, clk, _ := clockEnv(t, 30*time.Second)
	added := clk.Now()
	if got := a.Status()[0]; !got.Since.Equal(added) || got.Uptime != 0 {
		t.Errorf("new peer: since %v uptime %v, want %v and 0", got.Since, got.Uptime, added)
	}
	clk.Step(5 * time.Second)
	a.sessions.event(stateEvent("198.51.100.1", api.PeerState_ESTABLISHED))
	up := clk.Now()
	clk.Step(90 * time.Second)
	if got := a.Status()[0]; got.State != "Established" || !got.Since.Equal(up) || got.Uptime != 90*time.Second {
		t.Errorf("established: %s since %v uptime %v, want Established since %v uptime 1m30s", got.State, got.Since, got.Uptime, up)
	}
	a.sessions.event(stateEvent("198.51.100.1", api.PeerState_ACTIVE))
	if got := a.Status()[0]; got.State != "Active" || !got.Since.Equal(clk.Now()) || got.Uptime != 0 {
		t.Errorf("down: %s since %v uptime %v, want Active since %v uptime 0", got.State, got.Since, got.Uptime, clk.Now())
	}
}

// A session that never comes up warns once WarnAfter has passed since it
// was last Established (or added), even when it keeps changing states on
// the way: a router refusing our OPEN (AS numbers that do not match) has
// gobgp cycle Idle, Active, OpenSent every few seconds.
func TestWarnWhenFlappingUnestablished(t *testing.T) {
	a, clk, logs := clockEnv(t, 30*time.Second)
	cycle := []api.PeerState_SessionState{api.PeerState_ACTIVE, api.PeerState_OPENSENT, api.PeerState_IDLE}
	for i := range 12 { // 60s of states that last 5s each
		clk.Step(5 * time.Second)
		a.sessions.event(stateEvent("198.51.100.1", cycle[i%len(cycle)]))
		a.sessions.warnStuck(30 * time.Second)
	}
	if n := strings.Count(logs.String(), "session not established"); n != 1 {
		t.Errorf("%d warnings after 60s without a session, want 1:\n%s", n, logs)
	}
	if got := a.Status()[0].LastError; !strings.Contains(got, "session not established") {
		t.Errorf("last error %q, want the warning", got)
	}
}

// warnLoop checks on the announcer's clock: no warning before WarnAfter,
// one after, without waiting for the wall clock.
func TestWarnLoopOnTheClock(t *testing.T) {
	a, clk, logs := clockEnv(t, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.sessions.warnLoop(ctx, 30*time.Second); close(done) }()
	defer func() { cancel(); <-done }()
	waitTicker := func() {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return clk.HasWaiters(), nil
		})
		if err != nil {
			t.Fatalf("warnLoop never waits on the clock: %v", err)
		}
	}
	waitTicker()
	clk.Step(29 * time.Second)
	a.sessions.warnStuck(30 * time.Second) // what a tick would do
	if strings.Contains(logs.String(), "session not established") {
		t.Fatalf("warned after 29s of 30:\n%s", logs)
	}
	clk.Step(2 * time.Second)
	err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), "session not established"), nil
	})
	if err != nil {
		t.Errorf("no warning once 31s passed on the clock:\n%s", logs)
	}
}
