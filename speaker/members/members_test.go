package members

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// converge is the generous deadline for anything the tests wait for: the
// machine may be loaded, timing is logged, not asserted.
const converge = 20 * time.Second

func TestMembership(t *testing.T) {
	l := newTestLab(t, 3)
	var ms []*running
	for i, meta := range []string{"m1", "m2", "m3"} {
		ms = append(ms, l.start(i, func(o *Options) {
			o.Meta = []byte(meta)
			// Nobody there: join attempts hang until TCPTimeout, which
			// must delay neither the others' join nor the leave.
			o.Peers = append(o.Peers, "198.51.100.99")
		}))
	}
	waitLive(t, converge, l.names(0, 1, 2), ms...)
	if diff := cmp.Diff("m2", string(ms[0].MetaOf("node2"))); diff != "" {
		t.Errorf("node1 sees node2's meta (-want +got):\n%s", diff)
	}

	t.Run("meta update", func(t *testing.T) {
		drain(ms[0].Changes())
		if err := ms[1].SetMeta([]byte("m2b")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, converge, "node1 and node3 see node2's new meta", func() bool {
			return string(ms[0].MetaOf("node2")) == "m2b" && string(ms[2].MetaOf("node2")) == "m2b"
		})
		select {
		case <-ms[0].Changes():
		default:
			t.Error("node1: no change notified for node2's meta")
		}
	})

	t.Run("graceful leave", func(t *testing.T) {
		start := time.Now()
		go ms[2].cancel()
		gone := timeGone(t, start, converge, "node3", ms[0], ms[1])
		if err := ms[2].stop(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Since(start)
		t.Logf("node3 left: gone from node1 after %v, node2 after %v; its Run returned after %v",
			gone[0], gone[1], stopped)
		if got := ms[2].Live(); len(got) != 0 {
			t.Errorf("node3 still lists %v after Run returned", got)
		}
	})

	t.Run("rejoin", func(t *testing.T) {
		start := time.Now()
		ms[2] = l.start(2, nil)
		waitLive(t, converge, l.names(0, 1, 2), ms...)
		t.Logf("node3 back at all members after %v", time.Since(start))
		if got := ms[0].MetaOf("node3"); got != nil {
			t.Errorf("node3 restarted without meta, node1 sees %q", got)
		}
	})
}

// TestCrash kills a member process with SIGKILL, restarts it, and stops it
// with SIGTERM.
func TestCrash(t *testing.T) {
	l := newTestLab(t, 3)
	ms := []*running{l.start(0, nil), l.start(1, nil)}
	p := l.startProcess(2, testKey)
	all, survivors := l.names(0, 1, 2), l.names(0, 1)
	waitLive(t, converge, all, ms...)

	start := time.Now()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone := timeGone(t, start, converge, "node3", ms...)
	t.Logf("SIGKILL: node3 declared dead at node1 after %v, node2 after %v", gone[0], gone[1])
	waitLive(t, converge, survivors, ms...)

	start = time.Now()
	p = l.startProcess(2, testKey)
	waitLive(t, converge, all, ms...)
	t.Logf("restarted node3 seen by all after %v (process start included)", time.Since(start))

	start = time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gone = timeGone(t, start, converge, "node3", ms...)
	t.Logf("SIGTERM: node3 gone from node1 after %v, node2 after %v", gone[0], gone[1])
	<-p.Done()
	if out := p.Output(); !strings.Contains(out, "member stopped") {
		t.Errorf("node3 did not stop cleanly:\n%s", out)
	}
}

// TestLinkDown takes a member's link down (it keeps running, isolated), then
// up again: both sides must see the split and then heal.
func TestLinkDown(t *testing.T) {
	l := newTestLab(t, 3)
	ms := []*running{l.start(0, nil), l.start(1, nil), l.start(2, nil)}
	all := l.names(0, 1, 2)
	waitLive(t, converge, all, ms...)

	start := time.Now()
	if err := l.hosts[2].SetLink("eth1", false); err != nil {
		t.Fatal(err)
	}
	gone := timeGone(t, start, converge, "node3", ms[0], ms[1])
	t.Logf("link down: node3 declared dead at node1 after %v, node2 after %v", gone[0], gone[1])
	waitLive(t, converge, l.names(0, 1), ms[0], ms[1])
	waitLive(t, converge, l.names(2), ms[2])

	start = time.Now()
	if err := l.hosts[2].SetLink("eth1", true); err != nil {
		t.Fatal(err)
	}
	waitLive(t, converge, all, ms...)
	t.Logf("link up: healed after %v", time.Since(start))
}

// TestUnauthenticated: a member with another key, or none, never becomes a
// member, and sees nobody.
func TestUnauthenticated(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
	}{
		{"other key", func(o *Options) { o.SecretKey = otherKey }},
		{"no key", func(o *Options) { o.SecretKey, o.Insecure = nil, true }},
	}
	l := newTestLab(t, 3)
	ms := []*running{l.start(0, nil), l.start(1, nil)}
	waitLive(t, converge, l.names(0, 1), ms...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			intruder := l.start(2, tt.edit)
			// Several re-join rounds (300 ms) and push/pulls' worth.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				for _, m := range ms {
					if got := m.Live(); slices.Contains(got, "node3") {
						t.Fatalf("%s lists the intruder: %v", m.name, got)
					}
				}
				if got := intruder.Live(); len(got) > 1 {
					t.Fatalf("intruder sees %v", got)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got := value(t, intruder.metrics.joinErrors); got == 0 {
				t.Errorf("the intruder never failed to join: did it try?")
			}
			if err := intruder.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSetPeers: two members that know no peer stay alone until one is told
// of the other.
func TestSetPeers(t *testing.T) {
	l := newTestLab(t, 2)
	noPeers := func(o *Options) { o.Peers = nil; o.Metrics = NewMetrics(prometheus.NewRegistry()) }
	ms := []*running{l.start(0, noPeers), l.start(1, noPeers)}
	waitLive(t, converge, l.names(0), ms[0])
	waitLive(t, converge, l.names(1), ms[1])
	if err := ms[0].Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	time.Sleep(300 * time.Millisecond) // a re-join round: still alone
	waitLive(t, 0, l.names(0), ms[0])

	if err := ms[0].SetPeers([]string{l.addr(1).String()}); err != nil {
		t.Fatal(err)
	}
	waitLive(t, converge, l.names(0, 1), ms...)

	met := ms[0].metrics
	if got := value(t, met.live); got != 2 {
		t.Errorf("live members gauge = %v, want 2", got)
	}
	// At least: a false suspicion on a loaded machine adds a leave and a join.
	if got := value(t, met.events.WithLabelValues(eventJoin)); got < 2 {
		t.Errorf("join events = %v, want 2 (itself and node2)", got)
	}
	if err := ms[1].stop(); err != nil {
		t.Fatal(err)
	}
	waitLive(t, converge, l.names(0), ms[0])
	if got := value(t, met.events.WithLabelValues(eventLeave)); got < 1 {
		t.Errorf("leave events = %v, want 1", got)
	}
}

// value reads a gauge or counter.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if pb.Gauge != nil {
		return pb.Gauge.GetValue()
	}
	return pb.Counter.GetValue()
}

// TestSettled: a member that reaches no peer reports its view settled only
// after SettleTimeout; one that joins a running member does so once it has
// heard from it, with that member in its view, long before its timeout.
func TestSettled(t *testing.T) {
	l := newTestLab(t, 2)
	start := time.Now()
	first := l.start(0, func(o *Options) { o.Timers.SettleTimeout = time.Second })
	if first.Settled() {
		t.Fatal("node1 settled at once, before its peer could be heard")
	}
	waitFor(t, 10*time.Second, "node1 settles alone", first.Settled)
	if took := time.Since(start); took < time.Second {
		t.Errorf("node1 settled alone after %v, before its SettleTimeout of 1s", took)
	}
	if diff := cmp.Diff(l.names(0), first.Live()); diff != "" {
		t.Errorf("node1 alone (-want +got):\n%s", diff)
	}

	start = time.Now()
	second := l.start(1, func(o *Options) { o.Timers.SettleTimeout = time.Minute })
	var live []string
	waitFor(t, 20*time.Second, "node2 settles after joining node1", func() bool {
		live = second.Live() // read before Settled: what the view held by then
		return second.Settled()
	})
	t.Logf("node2 settled %v after it started", time.Since(start))
	if diff := cmp.Diff(l.names(0, 1), live); diff != "" {
		t.Errorf("node2's view when settled (-want +got):\n%s", diff)
	}
}

// TestMetaSetWhileStarting: a speaker publishes its interfaces as soon as
// its loop starts, which may be while Run is creating the member list. A
// SetMeta after the list took its meta but before Run stored the list had
// nothing to gossip through, and the others saw the member without
// interfaces for good: they kept its addresses while it announced them too.
func TestMetaSetWhileStarting(t *testing.T) {
	l := newTestLab(t, 2)
	first := l.start(0, nil)
	m, err := New(Options{
		Name: "node2", BindAddr: l.addr(1), Peers: l.peers(), SecretKey: testKey,
		Timers: testTimers(), Logger: testLogger(), Namespace: l.hosts[1].Do,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.created = func() {
		if err := m.SetMeta([]byte("ifaces")); err != nil {
			t.Error(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, converge, "node1 sees node2's meta", func() bool {
		return string(first.MetaOf("node2")) == "ifaces"
	})
}

// TestFailedFirstJoinRetriedSoon: a member whose first join round reaches
// nobody (its peer not up yet) tries again soon, not a RejoinInterval
// (here a minute) later; the peer, knowing no one, never joins it.
func TestFailedFirstJoinRetriedSoon(t *testing.T) {
	l := newTestLab(t, 2)
	b := l.start(1, func(o *Options) { o.Timers.RejoinInterval = time.Minute })
	waitLive(t, converge, l.names(1), b)
	time.Sleep(300 * time.Millisecond) // its first round found no one
	a := l.start(0, func(o *Options) { o.Peers = nil })
	waitLive(t, 10*time.Second, l.names(0, 1), a, b)
}
