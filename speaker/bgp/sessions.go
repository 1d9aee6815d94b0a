package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"k8s.io/utils/clock"
)

// sessions follows the state of every configured peer from gobgp's events:
// metrics, state-change logs and the warning about sessions that do not
// come up.
type sessions struct {
	log     *slog.Logger
	metrics *Metrics
	clock   clock.WithTicker

	mu     sync.Mutex
	byAddr map[string]*session
	// notAdded are the peers gobgp could not be given (a missing
	// interface, say), by name: reported Idle with why until they are.
	notAdded map[string]PeerStatus
	change   chan struct{} // closed and replaced on every state change
	// refused gets the sessions to close at once: the router opened them
	// with an ASN the peer does not accept.
	refused chan refusal
}

type refusal struct {
	addr   netip.Addr
	reason string
}

type session struct {
	name  string
	addr  netip.Addr
	md5   bool
	state api.PeerState_SessionState
	since time.Time // of the current state (or of the peer's creation)
	up    time.Time // when it last became Established
	// down is when it last left Established (or the peer's creation):
	// gobgp may cycle through the other states, and a session is stuck
	// for as long as it is not Established, whatever its state.
	down    time.Time
	warned  bool
	dialErr string
	lastErr string // why the session last went down or failed to come up
	limit   uint32 // the peer's prefix limit
	// overLimit is set when the peer exceeded its prefix limit, until the
	// session comes up again.
	overLimit bool
	// refuseAS is an ASN the router may not open with (this node's own,
	// for a peer that accepts any external ASN); 0 when none.
	refuseAS uint32
	// peerAS is the ASN the router opened the session with.
	peerAS uint32
	// bfd is the BFD session's state ("" without BFD); bfdHeld why BFD
	// holds the session down ("" when it does not).
	bfd, bfdHeld string
}

func newSessions(log *slog.Logger, m *Metrics, clk clock.WithTicker) *sessions {
	return &sessions{log: log, metrics: m, clock: clk, byAddr: map[string]*session{}, change: make(chan struct{}),
		refused: make(chan refusal, 16)}
}

func (s *sessions) add(p *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.byAddr[addrKey(p.Address.String())] = &session{name: p.Name, addr: p.Address, md5: p.Password != "",
		state: api.PeerState_IDLE, since: now, down: now, limit: p.MaxPrefixes, refuseAS: p.refusedAS()}
	s.metrics.setSession(p.Name, false)
}

func (s *sessions) remove(p *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byAddr, addrKey(p.Address.String()))
	s.metrics.deleteSession(p.Name)
	s.metrics.deletePrefixLimit(p.Name)
	s.notify()
}

func (s *sessions) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.byAddr {
		s.metrics.setSession(ss.name, false)
		ss.state = api.PeerState_IDLE
	}
}

// setNotAdded replaces the peers that could not be added.
func (s *sessions) setNotAdded(peers map[string]PeerStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maps.EqualFunc(s.notAdded, peers, func(a, b PeerStatus) bool { return a.LastError == b.LastError }) {
		return
	}
	s.notAdded = peers
	s.notify()
}

func (s *sessions) notify() {
	close(s.change)
	s.change = make(chan struct{})
}

func (s *sessions) dialError(addr string, err any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.byAddr[addrKey(addr)]; ok {
		ss.dialErr = fmt.Sprint(err)
		ss.lastErr = "connect: " + ss.dialErr
	}
}

// peerDown records why gobgp closed a session.
func (s *sessions) peerDown(addr string, reason any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byAddr[addrKey(addr)]
	if !ok || ss.refusing() { // the refusal says why
		return
	}
	ss.lastErr = "session closed: " + fmt.Sprint(reason)
	if ss.overLimit {
		ss.lastErr = fmt.Sprintf("prefix limit %d exceeded, the peer's routes dropped; %s", ss.limit, ss.lastErr)
	}
}

// peerUp is gobgp's word that a session came up: from here on a prefix
// limit event is a new one. (gobgp logs it on the goroutine that then
// reads the session's updates, so it comes before any limit event of the
// session, unlike the state event of WatchEvent.)
func (s *sessions) peerUp(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.byAddr[addrKey(addr)]; ok {
		ss.overLimit = false
	}
}

// prefixLimit records that gobgp is closing a session because the peer
// sent more prefixes of family than its limit.
func (s *sessions) prefixLimit(addr string, family any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// gobgp checks the limit after every UPDATE it has read, so it
	// reports each one that it had queued before the session closed: one
	// event per session.
	ss, ok := s.byAddr[addrKey(addr)]
	if !ok || ss.overLimit {
		return
	}
	ss.overLimit = true
	ss.lastErr = fmt.Sprintf("prefix limit %d exceeded (%v), the peer's routes dropped; closing the session", ss.limit, family)
	s.metrics.prefixLimit(ss.name)
	s.log.Warn("prefix limit exceeded: closing the session and dropping the peer's routes; check the router's export policy",
		"peer", ss.name, "addr", ss.addr, "limit", ss.limit, "family", fmt.Sprint(family))
	s.notify()
}

// setBFD records the state of a peer's BFD session and why it holds the
// BGP session down ("" when it does not).
func (s *sessions) setBFD(addr netip.Addr, state, held string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byAddr[addrKey(addr.String())]
	if !ok || (ss.bfd == state && ss.bfdHeld == held) {
		return
	}
	ss.bfd, ss.bfdHeld = state, held
	s.notify()
}

// clearBFD records that a peer has no BFD session any more.
func (s *sessions) clearBFD(addr netip.Addr) { s.setBFD(addr, "", "") }

// Changes is closed at the next session state change.
func (s *sessions) Changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change
}

// event handles one of gobgp's peer events.
func (s *sessions) event(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE || pe.Peer.GetState() == nil {
		return
	}
	st := pe.Peer.State
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byAddr[addrKey(st.NeighborAddress)]
	if !ok || ss.state == st.SessionState {
		return
	}
	was := ss.state
	ss.state, ss.since = st.SessionState, s.clock.Now()
	established := st.SessionState == api.PeerState_ESTABLISHED
	switch {
	case established:
		ss.up, ss.warned, ss.dialErr, ss.peerAS = ss.since, false, "", st.PeerAsn
		s.log.Info("session established", "peer", ss.name, "addr", ss.addr, "peer_asn", st.PeerAsn)
		s.refuse(ss)
	case was == api.PeerState_ESTABLISHED:
		ss.down = ss.since
		s.log.Warn("session down", "peer", ss.name, "addr", ss.addr, "state", stateName(st.SessionState))
	}
	s.metrics.setSession(ss.name, established)
	s.notify()
}

// refusing reports whether the router last opened the session with the
// ASN the peer refuses.
func (ss *session) refusing() bool { return ss.refuseAS != 0 && ss.peerAS == ss.refuseAS }

// refuse queues an established session for closing when the router
// opened it with the ASN the peer refuses. The queue is read by
// refuseLoop; when full, the session is refused at its next opening.
func (s *sessions) refuse(ss *session) {
	if !ss.refusing() {
		return
	}
	ss.lastErr = fmt.Sprintf("the router opened the session with AS %d, this node's own: dynamicASN external wants another; closed, retried later", ss.peerAS)
	s.log.Warn("refusing an iBGP session from a peer that must be external", "peer", ss.name, "addr", ss.addr, "peer_asn", ss.peerAS)
	select {
	case s.refused <- refusal{addr: ss.addr, reason: ss.lastErr}:
	default:
	}
}

func stateName(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_ESTABLISHED:
		return "Established"
	case api.PeerState_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_OPENSENT:
		return "OpenSent"
	case api.PeerState_ACTIVE:
		return "Active"
	case api.PeerState_CONNECT:
		return "Connect"
	default:
		return "Idle"
	}
}

// warnLoop logs, once per outage, every session that has not been
// Established for longer than after (in whatever states it went through);
// it returns when ctx ends.
func (s *sessions) warnLoop(ctx context.Context, after time.Duration) {
	tick := s.clock.NewTicker(max(min(after/4, time.Second), 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			s.warnStuck(after)
		}
	}
}

func (s *sessions) warnStuck(after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.byAddr {
		if ss.state == api.PeerState_ESTABLISHED || ss.warned || s.clock.Since(ss.down) < after || ss.refusing() {
			continue // refused sessions keep the refusal as their reason
		}
		ss.warned = true
		attrs := []any{"peer", ss.name, "addr", ss.addr, "state", stateName(ss.state),
			"for", s.clock.Since(ss.down).Round(time.Second), "md5", ss.md5}
		if ss.dialErr != "" {
			attrs = append(attrs, "err", ss.dialErr)
		}
		hint := "session not established: check that the router has this node as a neighbor with matching AS numbers"
		if ss.md5 {
			hint = "session not established and a TCP MD5 password is set: a password mismatch looks like this " +
				"(the router drops our TCP segments, so connecting times out); check the password on both sides"
		}
		s.log.Warn(hint, attrs...)
		ss.lastErr = hint
		if ss.dialErr != "" {
			ss.lastErr += " (connect: " + ss.dialErr + ")"
		}
		s.notify()
	}
}

// waitAllDown waits until no session is Established.
func (s *sessions) waitAllDown(ctx context.Context) error {
	for {
		s.mu.Lock()
		up := 0
		for _, ss := range s.byAddr {
			if ss.state == api.PeerState_ESTABLISHED {
				up++
			}
		}
		change := s.change
		s.mu.Unlock()
		if up == 0 {
			return nil
		}
		select {
		case <-change:
		case <-ctx.Done():
			return fmt.Errorf("%d sessions up: %w", up, ctx.Err())
		}
	}
}

// addrKey is a peer address without its zone: gobgp names a link-local
// peer fe80::1%eth1 in its logs but fe80::1 in its events, so sessions
// are found by the address alone (normalizePeers keeps those unique).
func addrKey(addr string) string {
	a, _, _ := strings.Cut(addr, "%")
	return a
}
