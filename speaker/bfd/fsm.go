package bfd

import (
	"math/rand/v2"
	"time"
)

// slowTx is the least Desired Min TX Interval a session advertises while it
// is not Up (RFC 5880 §6.8.3).
const slowTx = time.Second

// initialRemoteMinRx is bfd.RemoteMinRxInterval before the peer's first
// packet (RFC 5880 §6.8.1: 1 µs).
const initialRemoteMinRx = time.Microsecond

// fsmConfig is what an fsm needs from Options.
type fsmConfig struct {
	discr         uint32 // bfd.LocalDiscr, non-zero
	desiredMinTx  time.Duration
	requiredMinRx time.Duration
	detectMult    uint8
	passive       bool
	// rand returns a number in [0, 1) for transmit jitter; default
	// math/rand/v2.
	rand func() float64
}

// fsm is one session's state machine (RFC 5880 §6.2, §6.8) in asynchronous
// mode, without echo, demand mode (it never asks for it, though it honours
// a peer's) or authentication. It is pure: every method takes the current
// time, and the caller sends the packets the fsm returns and calls step
// again at next(). Not safe for concurrent use.
type fsm struct {
	cfg fsmConfig

	state State
	diag  Diag // bfd.LocalDiag

	remoteState        State
	remoteDiscr        uint32
	remoteDemand       bool
	remoteMinRx        time.Duration // bfd.RemoteMinRxInterval
	remoteDesiredMinTx time.Duration
	remoteDetectMult   uint8 // 0 until the first packet
	remoteDiag         Diag

	// advTx and advRx are the intervals the session advertises; useTx
	// and useRx are the ones in force for its own transmit interval and
	// detection time. They differ while a Poll Sequence is pending (RFC
	// 5880 §6.8.3): a longer transmit interval or a shorter receive
	// interval waits for the peer's Final.
	advTx, advRx time.Duration
	useTx, useRx time.Duration
	poll         bool // a Poll Sequence is in progress
	wantFinal    bool // the peer polled: a Final is owed

	nextTx   time.Time // zero: no periodic packet scheduled
	detectAt time.Time // zero: detection timer off

	changes []fsmChange
}

type fsmChange struct {
	from, to    State
	diag        Diag
	remoteState State
	at          time.Time
}

func newFSM(cfg fsmConfig, now time.Time) *fsm {
	if cfg.rand == nil {
		cfg.rand = rand.Float64
	}
	m := &fsm{
		cfg:         cfg,
		state:       Down,
		remoteState: Down,
		remoteMinRx: initialRemoteMinRx,
		advTx:       max(slowTx, cfg.desiredMinTx),
		advRx:       cfg.requiredMinRx,
	}
	m.useTx, m.useRx = m.advTx, m.advRx
	if m.canTransmit() {
		m.nextTx = now
	}
	return m
}

// txInterval is the negotiated periodic transmit interval before jitter.
func (m *fsm) txInterval() time.Duration { return max(m.useTx, m.remoteMinRx) }

// detectTime is the detection time (RFC 5880 §6.8.4, asynchronous mode),
// 0 before the peer's first packet.
func (m *fsm) detectTime() time.Duration {
	return time.Duration(m.remoteDetectMult) * max(m.useRx, m.remoteDesiredMinTx)
}

// canTransmit applies RFC 5880 §6.8.7's rules against periodic packets.
func (m *fsm) canTransmit() bool {
	switch {
	case m.cfg.passive && m.remoteDiscr == 0:
		return false
	case m.remoteMinRx == 0:
		return false
	case m.remoteDemand && m.state == Up && m.remoteState == Up:
		return false
	}
	return true
}

// jittered reduces d by 0-25%, or by 10-25% with a detect multiplier of 1
// (RFC 5880 §6.8.7).
func (m *fsm) jittered(d time.Duration) time.Duration {
	r := m.cfg.rand()
	if m.cfg.detectMult == 1 {
		return time.Duration(float64(d) * (0.90 - 0.15*r))
	}
	return time.Duration(float64(d) * (1 - 0.25*r))
}

func (m *fsm) packet() Packet {
	return Packet{
		Diag:              m.diag,
		State:             m.state,
		Poll:              m.poll,
		DetectMult:        m.cfg.detectMult,
		MyDiscriminator:   m.cfg.discr,
		YourDiscriminator: m.remoteDiscr,
		DesiredMinTx:      m.advTx,
		RequiredMinRx:     m.advRx,
	}
}

func (m *fsm) setState(now time.Time, s State, diag Diag) {
	if s == m.state {
		return
	}
	m.changes = append(m.changes, fsmChange{from: m.state, to: s, diag: diag, remoteState: m.remoteState, at: now})
	wasUp := m.state == Up
	m.state, m.diag = s, diag
	switch {
	case s == Up:
		// Fast timers from now on, announced with a Poll.
		m.setTimers(m.cfg.desiredMinTx, m.cfg.requiredMinRx)
	case wasUp && s == AdminDown:
		// Advertise the slow rate but keep sending AdminDown at the old
		// one: the peer's detection time for us still counts on it
		// (and no Poll will confirm the change).
		m.poll = false
		m.advTx = max(slowTx, m.cfg.desiredMinTx)
	case wasUp:
		// Back to at least one second, at once: the peer is gone or
		// down, nobody is left to answer a Poll.
		m.poll = false
		m.advTx = max(slowTx, m.cfg.desiredMinTx)
		m.useTx, m.useRx = m.advTx, m.advRx
	}
	// Tell the peer now rather than at the next periodic packet.
	if m.canTransmit() {
		m.nextTx = now
	}
}

// setTimers changes the advertised intervals. While Up a change starts a
// Poll Sequence, and the parts that would let the peer's timers expire
// early wait for its Final.
func (m *fsm) setTimers(tx, rx time.Duration) {
	if m.state != Up {
		tx = max(slowTx, tx)
	}
	if tx == m.advTx && rx == m.advRx {
		return
	}
	m.advTx, m.advRx = tx, rx
	if m.state != Up {
		m.useTx, m.useRx = tx, rx
		return
	}
	m.poll = true
	m.useTx = min(m.useTx, tx)
	m.useRx = max(m.useRx, rx)
}

// setIntervals changes the configured intervals: in force now (through a
// Poll while Up), and the ones the session goes back to on its next Up.
func (m *fsm) setIntervals(now time.Time, desiredMinTx, requiredMinRx time.Duration) {
	m.cfg.desiredMinTx, m.cfg.requiredMinRx = desiredMinTx, requiredMinRx
	m.setTimers(desiredMinTx, requiredMinRx)
	if m.poll && m.canTransmit() {
		m.nextTx = now // send the Poll now
	}
}

// receive applies a packet Parse accepted and the demultiplexer matched to
// this session (RFC 5880 §6.8.6 from "Set bfd.RemoteDiscr" on).
func (m *fsm) receive(now time.Time, p *Packet) {
	m.remoteDiscr = p.MyDiscriminator
	m.remoteState = p.State
	m.remoteDemand = p.Demand
	m.remoteMinRx = p.RequiredMinRx
	m.remoteDesiredMinTx = p.DesiredMinTx
	m.remoteDetectMult = p.DetectMult
	m.remoteDiag = p.Diag
	if p.Final && m.poll {
		m.poll = false
		m.useTx, m.useRx = m.advTx, m.advRx
	}
	if m.state == AdminDown {
		return
	}
	m.detectAt = now.Add(m.detectTime())

	if p.State == AdminDown {
		if m.state != Down {
			m.setState(now, Down, DiagNeighborDown)
		}
	} else {
		switch m.state {
		case Down:
			switch p.State {
			case Down:
				m.setState(now, Init, m.diag)
			case Init:
				m.setState(now, Up, DiagNone)
			}
		case Init:
			if p.State == Init || p.State == Up {
				m.setState(now, Up, DiagNone)
			}
		case Up:
			if p.State == Down {
				m.setState(now, Down, DiagNeighborDown)
			}
		}
	}
	if p.Poll {
		m.wantFinal = true
	}
	// Start transmitting (a passive session's first packet) or speed up
	// when the peer asks for packets sooner than the next one is due.
	if !m.canTransmit() {
		m.nextTx = time.Time{}
	} else if m.nextTx.IsZero() || m.nextTx.Sub(now) > m.txInterval() {
		m.nextTx = now
	}
}

// step runs the timers due at now: detection time expiry, a Final owed to
// the peer, the periodic packet. It returns the packets to send.
func (m *fsm) step(now time.Time) []Packet {
	var out []Packet
	if !m.detectAt.IsZero() && !now.Before(m.detectAt) {
		m.detectAt = time.Time{}
		if m.state == Init || m.state == Up {
			m.setState(now, Down, DiagControlDetectionTimeExpired)
		}
		// A Detection Time without packets: forget the peer (§6.8.1).
		m.remoteDiscr = 0
		m.remoteState = Down
		m.remoteDemand = false
		m.remoteMinRx = initialRemoteMinRx
		m.remoteDetectMult = 0
		if !m.canTransmit() {
			m.nextTx = time.Time{}
		} else if m.nextTx.IsZero() {
			m.nextTx = now
		}
	}
	if m.wantFinal {
		m.wantFinal = false
		p := m.packet()
		p.Poll, p.Final = false, true
		out = append(out, p)
	}
	if !m.nextTx.IsZero() && !now.Before(m.nextTx) && m.canTransmit() {
		out = append(out, m.packet())
		m.nextTx = now.Add(m.jittered(m.txInterval()))
	}
	return out
}

// next is when step must run next; zero when no timer runs. (After
// receive the caller runs step at once: a Final may be owed.)
func (m *fsm) next() time.Time {
	t := m.detectAt
	if !m.nextTx.IsZero() && m.canTransmit() && (t.IsZero() || m.nextTx.Before(t)) {
		t = m.nextTx
	}
	return t
}

// adminDown takes the session administratively down (RFC 5880 §6.8.16):
// it keeps sending AdminDown packets and ignores the peer's.
func (m *fsm) adminDown(now time.Time) {
	m.setState(now, AdminDown, DiagAdminDown)
	m.detectAt = time.Time{}
}

// takeChanges returns and forgets the state changes since the last call.
func (m *fsm) takeChanges() []fsmChange {
	c := m.changes
	m.changes = nil
	return c
}
