package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"k8s.io/utils/clock"

	"github.com/pier-lb/pier/speaker/bfd"
)

// TestHoldFor: only a change from Up to Down that the peer did not ask
// for (RFC 5882 §3.2) closes the BGP session; Up opens it again.
func TestHoldFor(t *testing.T) {
	for _, tc := range []struct {
		name          string
		c             bfd.Change
		hold, release bool
	}{
		{"up to down, detection time", bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.Up}, true, false},
		{"up to down, neighbor signaled down", bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.Down}, true, false},
		{"up to down, peer admin down", bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.AdminDown}, false, false},
		{"up to our admin down", bfd.Change{From: bfd.Up, To: bfd.AdminDown, RemoteState: bfd.Up}, false, false},
		{"init to down: never up", bfd.Change{From: bfd.Init, To: bfd.Down, RemoteState: bfd.Down}, false, false},
		{"down to init", bfd.Change{From: bfd.Down, To: bfd.Init}, false, false},
		{"init to up", bfd.Change{From: bfd.Init, To: bfd.Up}, false, true},
		{"down to up", bfd.Change{From: bfd.Down, To: bfd.Up}, false, true},
	} {
		hold, release := holdFor(tc.c)
		if hold != tc.hold || release != tc.release {
			t.Errorf("%s: hold %v release %v, want %v %v", tc.name, hold, release, tc.hold, tc.release)
		}
	}
}

// TestBFDPeerSettings: defaults; BFD changes never reset the BGP session;
// interval changes keep the BFD session, other changes restart it.
func TestBFDPeerSettings(t *testing.T) {
	base := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64513, PeerASN: 64512, BFD: &BFD{}}
	got, err := normalizePeers([]Peer{base, {Name: "r2", Address: netip.MustParseAddr("198.51.100.2"), MyASN: 1, PeerASN: 2,
		BFD: &BFD{Multihop: true}}})
	if err != nil {
		t.Fatal(err)
	}
	want := BFD{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
	if diff := cmp.Diff(&want, got["r1"].BFD); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if base.BFD.DetectMult != 0 {
		t.Error("normalize changed the caller's BFD")
	}
	if mt := got["r2"].BFD.MinTTL; mt != 254 {
		t.Errorf("multihop min ttl %d, want 254", mt)
	}
	p := got["r1"]
	for _, tc := range []struct {
		name    string
		mod     func(b *BFD)
		sameBFD bool
	}{
		{"intervals", func(b *BFD) { b.DesiredMinTx, b.RequiredMinRx = time.Second, 50*time.Millisecond }, true},
		{"detect multiplier", func(b *BFD) { b.DetectMult = 5 }, false},
		{"passive", func(b *BFD) { b.Passive = true }, false},
		{"multihop", func(b *BFD) { b.Multihop, b.MinTTL = true, 254 }, false},
	} {
		q := *p
		b := *p.BFD
		tc.mod(&b)
		q.BFD = &b
		if !samePeer(p, &q) {
			t.Errorf("%s: resets the BGP session", tc.name)
		}
		if got := sameBFDSession(p, &q); got != tc.sameBFD {
			t.Errorf("%s: same BFD session %v, want %v", tc.name, got, tc.sameBFD)
		}
	}
	off := *p
	off.BFD = nil
	if !samePeer(p, &off) || sameBFDSession(p, &off) {
		t.Error("BFD off: must keep the BGP session and stop the BFD one")
	}
}

// adminFake is gobgp's admin state as the BFD holds see it: one pending
// request at a time, a second one dropped (gobgp logs "previous setting
// admin state request is still remaining" and returns nil).
type adminFake struct {
	mu      sync.Mutex
	down    bool
	pending *bool
	dropped int
	lists   int // ListPeer calls
}

func (f *adminFake) request(down bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending != nil {
		f.dropped++
		return nil
	}
	f.pending = &down
	return nil
}

func (f *adminFake) DisablePeer(context.Context, *api.DisablePeerRequest) error {
	return f.request(true)
}
func (f *adminFake) EnablePeer(context.Context, *api.EnablePeerRequest) error {
	return f.request(false)
}

func (f *adminFake) ListPeer(_ context.Context, _ *api.ListPeerRequest, fn func(*api.Peer)) error {
	f.mu.Lock()
	f.lists++
	st := api.PeerState_UP
	if f.down {
		st = api.PeerState_DOWN
	}
	f.mu.Unlock()
	fn(&api.Peer{State: &api.PeerState{AdminState: st}})
	return nil
}

// process is gobgp's FSM taking the pending request.
func (f *adminFake) process() (pending bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending != nil {
		f.down, f.pending = *f.pending, nil
		return true
	}
	return false
}

// TestHoldSurvivesDroppedRequest: BFD going Down and Up again quickly
// sends gobgp a disable, and the Up comes while it is pending (gobgp would
// drop an enable then). The neighbor must still end enabled: it stayed
// disabled for good (found by BenchmarkFailover) before the periodic
// check of gobgp's admin state.
func TestHoldSurvivesDroppedRequest(t *testing.T) {
	fake := &adminFake{}
	ss := newSessions(slog.New(slog.DiscardHandler), nil, clock.RealClock{})
	b := newBFDPeers(slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler), ss, func() gobgpAdmin { return fake })
	b.ctx = context.Background()
	bp := &bfdPeer{peer: Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1")}, kick: make(chan struct{}, 1)}
	bp.why.Store("")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.applyHolds(ctx, b.log, bp) }()
	defer func() { cancel(); <-done }()

	b.changed(bp, bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.Up})
	waitFor(t, "disable requested", func() bool { fake.mu.Lock(); defer fake.mu.Unlock(); return fake.pending != nil })
	fake.mu.Lock()
	lists := fake.lists
	fake.mu.Unlock()
	b.changed(bp, bfd.Change{From: bfd.Down, To: bfd.Init})
	b.changed(bp, bfd.Change{From: bfd.Init, To: bfd.Up})
	// The Up is handled while gobgp still shows the neighbor enabled.
	waitFor(t, "up handled", func() bool { fake.mu.Lock(); defer fake.mu.Unlock(); return fake.lists > lists })
	fake.process() // the disable, late
	waitFor(t, "neighbor enabled in the end", func() bool {
		fake.process()
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return !fake.down && fake.pending == nil
	})
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
