package bfd

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	ourDiscr  = 0x1111
	peerDiscr = 0x2222
	ms        = time.Millisecond
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// newTestFSM: 300 ms both ways, multiplier 3, no jitter.
func newTestFSM(passive bool) *fsm {
	return newFSM(fsmConfig{discr: ourDiscr, desiredMinTx: 300 * ms, requiredMinRx: 300 * ms,
		detectMult: 3, passive: passive, rand: func() float64 { return 0 }}, t0)
}

// peer builds the peer's packet in state s, as FRR sends it: 300 ms once
// Up, 1 s before.
func peer(s State, your uint32) *Packet {
	p := &Packet{State: s, DetectMult: 3, MyDiscriminator: peerDiscr, YourDiscriminator: your,
		DesiredMinTx: time.Second, RequiredMinRx: 300 * ms}
	if s == Up {
		p.DesiredMinTx = 300 * ms
	}
	return p
}

func states(cs []fsmChange) []State {
	var out []State
	for _, c := range cs {
		out = append(out, c.to)
	}
	return out
}

// bringUp takes m Up through Down -> Init -> Up at 10 ms and 20 ms, with
// the Poll that follows answered.
func bringUp(t *testing.T, m *fsm) {
	t.Helper()
	m.receive(at(10*ms), peer(Down, 0))
	m.step(at(10 * ms))
	m.receive(at(20*ms), peer(Up, ourDiscr))
	m.step(at(20 * ms))
	fin := peer(Up, ourDiscr)
	fin.Final = true
	m.receive(at(21*ms), fin)
	m.step(at(21 * ms))
	if m.state != Up || m.poll {
		t.Fatalf("after bring-up: state %s, poll %t", m.state, m.poll)
	}
	m.takeChanges()
}

func TestFSMBringUp(t *testing.T) {
	m := newTestFSM(false)
	// The first packet goes at once: Down, no Your Discriminator, 1 s.
	got := m.step(t0)
	want := []Packet{{State: Down, DetectMult: 3, MyDiscriminator: ourDiscr,
		DesiredMinTx: time.Second, RequiredMinRx: 300 * ms}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first packet (-want +got):\n%s", diff)
	}
	// Slow start: the next one a second later, however fast the peer
	// could receive.
	if got := m.next(); !got.Equal(at(time.Second)) {
		t.Errorf("next = %s, want t0+1s", got.Sub(t0))
	}

	// Peer says Down: Init, told at once.
	m.receive(at(100*ms), peer(Down, 0))
	got = m.step(at(100 * ms))
	want = []Packet{{State: Init, DetectMult: 3, MyDiscriminator: ourDiscr, YourDiscriminator: peerDiscr,
		DesiredMinTx: time.Second, RequiredMinRx: 300 * ms}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("init packet (-want +got):\n%s", diff)
	}

	// Peer says Up: Up, and a Poll announcing the fast interval.
	m.receive(at(200*ms), peer(Up, ourDiscr))
	got = m.step(at(200 * ms))
	want = []Packet{{State: Up, Poll: true, DetectMult: 3, MyDiscriminator: ourDiscr, YourDiscriminator: peerDiscr,
		DesiredMinTx: 300 * ms, RequiredMinRx: 300 * ms}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("up packet (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]State{Init, Up}, states(m.takeChanges())); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	// The Poll repeats until the Final.
	if got := m.step(at(500 * ms)); len(got) != 1 || !got[0].Poll {
		t.Fatalf("at 500ms: %+v, want one Poll", got)
	}
	fin := peer(Up, ourDiscr)
	fin.Final = true
	m.receive(at(550*ms), fin)
	if got := m.step(at(550 * ms)); len(got) != 0 {
		t.Errorf("a Final is answered by nothing, got %+v", got)
	}
	if got := m.step(at(800 * ms)); len(got) != 1 || got[0].Poll {
		t.Errorf("at 800ms: %+v, want one packet without Poll", got)
	}
}

func TestFSMInitToUp(t *testing.T) {
	m := newTestFSM(false)
	m.step(t0)
	// The peer heard us first and is in Init: straight to Up.
	m.receive(at(5*ms), peer(Init, ourDiscr))
	if m.state != Up {
		t.Fatalf("state %s, want Up", m.state)
	}
	// In Init, the peer's Init or Up also brings Up.
	for _, s := range []State{Init, Up} {
		m := newTestFSM(false)
		m.receive(at(5*ms), peer(Down, 0))
		m.receive(at(6*ms), peer(s, ourDiscr))
		if m.state != Up {
			t.Errorf("Init + peer %s: state %s, want Up", s, m.state)
		}
	}
}

func TestFSMDetectionTime(t *testing.T) {
	m := newTestFSM(false)
	bringUp(t, m)
	last := at(21 * ms) // the Final
	// 3 × max(our 300 ms, the peer's 300 ms).
	if got := m.detectAt; !got.Equal(last.Add(900 * ms)) {
		t.Fatalf("detectAt = %s, want last+900ms", got.Sub(last))
	}
	m.step(last.Add(899 * ms))
	if m.state != Up {
		t.Fatalf("state %s before detection time", m.state)
	}
	got := m.step(last.Add(900 * ms))
	ch := m.takeChanges()
	want := []fsmChange{{from: Up, to: Down, diag: DiagControlDetectionTimeExpired, remoteState: Up, at: last.Add(900 * ms)}}
	if diff := cmp.Diff(want, ch, cmp.AllowUnexported(fsmChange{})); diff != "" {
		t.Fatalf("changes (-want +got):\n%s", diff)
	}
	// Down is told at once, with the diag, no longer to the old peer
	// discriminator, and at the slow rate again.
	if len(got) != 1 || got[0].State != Down || got[0].Diag != DiagControlDetectionTimeExpired ||
		got[0].YourDiscriminator != 0 || got[0].DesiredMinTx != time.Second {
		t.Fatalf("packet after expiry: %+v", got)
	}
}

func TestFSMDetectionUsesSlowerSide(t *testing.T) {
	m := newTestFSM(false)
	bringUp(t, m)
	p := peer(Up, ourDiscr)
	p.DesiredMinTx, p.DetectMult, p.RequiredMinRx = 500*ms, 4, 700*ms
	m.receive(at(time.Second), p)
	if got, want := m.detectTime(), 4*500*ms; got != want {
		t.Errorf("detection time %s, want %s (peer mult × max(our rx, peer tx))", got, want)
	}
	if got, want := m.txInterval(), 700*ms; got != want {
		t.Errorf("tx interval %s, want %s (max(our tx, peer rx))", got, want)
	}
	// A peer asking for packets sooner than the next is due gets one at
	// once.
	p.RequiredMinRx = 100 * ms
	m.nextTx = at(2 * time.Second)
	m.receive(at(1100*ms), p)
	if !m.next().Equal(at(1100 * ms)) {
		t.Errorf("next = %s, want at once", m.next().Sub(t0))
	}
}

func TestFSMPeerSignalsDown(t *testing.T) {
	for _, s := range []State{Down, AdminDown} {
		m := newTestFSM(false)
		bringUp(t, m)
		m.receive(at(time.Second), peer(s, ourDiscr))
		ch := m.takeChanges()
		want := []fsmChange{{from: Up, to: Down, diag: DiagNeighborDown, remoteState: s, at: at(time.Second)}}
		if diff := cmp.Diff(want, ch, cmp.AllowUnexported(fsmChange{})); diff != "" {
			t.Errorf("peer %s: changes (-want +got):\n%s", s, diff)
		}
	}
	// AdminDown from the peer while Down changes nothing.
	m := newTestFSM(false)
	m.receive(at(ms), peer(AdminDown, 0))
	if m.state != Down || len(m.takeChanges()) != 0 {
		t.Errorf("Down + peer AdminDown: state %s", m.state)
	}
}

func TestFSMPassive(t *testing.T) {
	m := newTestFSM(true)
	if got := m.step(t0); len(got) != 0 {
		t.Fatalf("passive session sent %+v before hearing the peer", got)
	}
	if !m.next().IsZero() {
		t.Fatalf("passive session scheduled %s", m.next())
	}
	m.receive(at(3*time.Second), peer(Down, 0))
	got := m.step(at(3 * time.Second))
	if len(got) != 1 || got[0].State != Init || got[0].YourDiscriminator != peerDiscr {
		t.Fatalf("after the peer's packet: %+v", got)
	}
	// The peer goes silent: a detection time later the passive side
	// forgets it and stops sending.
	m.step(m.detectAt)
	if got := m.step(m.detectAt.Add(10 * time.Second)); len(got) != 0 || !m.next().IsZero() {
		t.Errorf("passive session still sends after the peer left: %+v", got)
	}
}

func TestFSMAnswersPoll(t *testing.T) {
	m := newTestFSM(false)
	bringUp(t, m)
	p := peer(Up, ourDiscr)
	p.Poll = true
	m.receive(at(time.Second), p)
	got := m.step(at(time.Second))
	if len(got) == 0 || !got[0].Final || got[0].Poll {
		t.Fatalf("answer to a Poll: %+v, want a Final first", got)
	}
}

func TestFSMPollHoldsTimers(t *testing.T) {
	m := newTestFSM(false)
	bringUp(t, m)
	// Slower transmit and faster receive both wait for the Final.
	m.setTimers(time.Second, 100*ms)
	if !m.poll || m.useTx != 300*ms || m.useRx != 300*ms {
		t.Fatalf("during poll: poll %t useTx %s useRx %s", m.poll, m.useTx, m.useRx)
	}
	if got := m.packet(); got.DesiredMinTx != time.Second || got.RequiredMinRx != 100*ms || !got.Poll {
		t.Fatalf("poll packet %+v", got)
	}
	fin := peer(Up, ourDiscr)
	fin.Final = true
	m.receive(at(time.Second), fin)
	if m.poll || m.useTx != time.Second || m.useRx != 100*ms {
		t.Fatalf("after final: poll %t useTx %s useRx %s", m.poll, m.useTx, m.useRx)
	}
	// Faster transmit and slower receive apply at once.
	m.setTimers(200*ms, 400*ms)
	if m.useTx != 200*ms || m.useRx != 400*ms {
		t.Errorf("useTx %s useRx %s, want applied at once", m.useTx, m.useRx)
	}
}

func TestFSMPeerWantsNoPackets(t *testing.T) {
	m := newTestFSM(false)
	bringUp(t, m)
	p := peer(Up, ourDiscr)
	p.RequiredMinRx = 0
	m.receive(at(time.Second), p)
	if got := m.step(at(1800 * ms)); len(got) != 0 {
		t.Errorf("sent %+v to a peer with Required Min RX 0", got)
	}
	// Nor to a peer in demand mode while both are Up.
	m = newTestFSM(false)
	bringUp(t, m)
	p = peer(Up, ourDiscr)
	p.Demand = true
	m.receive(at(time.Second), p)
	if got := m.step(at(1500 * ms)); len(got) != 0 {
		t.Errorf("sent %+v to a peer in demand mode", got)
	}
}

func TestFSMAdminDown(t *testing.T) {
	m := newTestFSM(false)
	bringUp(t, m)
	m.adminDown(at(time.Second))
	got := m.step(at(time.Second))
	if len(got) != 1 || got[0].State != AdminDown || got[0].Diag != DiagAdminDown || got[0].DesiredMinTx != time.Second {
		t.Fatalf("admin down packet: %+v", got)
	}
	// Still at the Up rate: the peer's detection time counts on it.
	if next := m.next(); !next.Equal(at(1300 * ms)) {
		t.Errorf("next AdminDown packet at %s, want 1.3s", next.Sub(t0))
	}
	m.receive(at(1100*ms), peer(Down, ourDiscr))
	if m.state != AdminDown || !m.detectAt.IsZero() {
		t.Errorf("AdminDown session took a packet: state %s", m.state)
	}
}

func TestFSMJitter(t *testing.T) {
	for _, tt := range []struct {
		mult     uint8
		r        float64
		min, max time.Duration
	}{
		{3, 0, 1000 * ms, 1000 * ms},
		{3, 0.999999, 750 * ms, 751 * ms},
		{1, 0, 900 * ms, 900 * ms},
		{1, 0.999999, 750 * ms, 751 * ms},
	} {
		m := &fsm{cfg: fsmConfig{detectMult: tt.mult, rand: func() float64 { return tt.r }}}
		if got := m.jittered(time.Second); got < tt.min || got > tt.max {
			t.Errorf("mult %d rand %v: %s, want %s to %s", tt.mult, tt.r, got, tt.min, tt.max)
		}
	}
	// With real randomness, intervals stay within 75-100%.
	m := newFSM(fsmConfig{discr: 1, desiredMinTx: 300 * ms, requiredMinRx: 300 * ms, detectMult: 3}, t0)
	for range 1000 {
		if got := m.jittered(time.Second); got < 750*ms || got > time.Second {
			t.Fatalf("jittered 1s = %s", got)
		}
	}
}

func TestFSMSetIntervals(t *testing.T) {
	m := newTestFSM(false)
	// Before Up: advertised at once, but never below the 1 s slow rate.
	m.setIntervals(t0, 100*ms, 200*ms)
	if p := m.packet(); p.DesiredMinTx != time.Second || p.RequiredMinRx != 200*ms || p.Poll {
		t.Fatalf("before Up: %+v", p)
	}
	bringUp(t, m)
	if p := m.packet(); p.DesiredMinTx != 100*ms {
		t.Fatalf("Up with the new interval: %+v", p)
	}
	// While Up: a Poll, sent at once.
	m.setIntervals(at(500*ms), 500*ms, 200*ms)
	got := m.step(at(500 * ms))
	if len(got) != 1 || !got[0].Poll || got[0].DesiredMinTx != 500*ms {
		t.Fatalf("after setIntervals while Up: %+v", got)
	}
	if m.useTx != 100*ms {
		t.Errorf("slower tx applied before the Final: %s", m.useTx)
	}
}
