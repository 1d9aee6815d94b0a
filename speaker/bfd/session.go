package bfd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Ports (RFC 5881 §4, RFC 5883 §5).
const (
	SingleHopPort = 3784
	MultihopPort  = 4784
)

// Defaults and limits.
const (
	DefaultInterval   = 300 * time.Millisecond
	DefaultDetectMult = 3
	// DefaultMultihopMinTTL accepts multihop packets that crossed at most
	// one router, as FRR's bfdd does by default (minimum-ttl 254).
	DefaultMultihopMinTTL = 254
	// MinInterval is the shortest interval Options accept: a user-space
	// implementation on a busy node cannot keep shorter promises.
	MinInterval = 10 * time.Millisecond
)

// ErrInvalid marks an Options error.
var ErrInvalid = errors.New("invalid bfd setting")

// Options configures a Session.
type Options struct {
	// Local is the address the session sends from and receives on; Peer
	// is the remote system. Both are required and of one family. A
	// link-local IPv6 peer needs Interface.
	Local, Peer netip.Addr
	// Interface binds the session's sending socket to a network
	// interface (SO_BINDTODEVICE) and is the zone of link-local
	// addresses. Optional, except for a link-local IPv6 peer (a zone on
	// Peer serves too).
	Interface string
	// Multihop selects RFC 5883 (UDP 4784, TTL checked against MinTTL)
	// instead of single hop (RFC 5881: UDP 3784, TTL must be 255).
	Multihop bool
	// MinTTL is the least TTL or hop limit a multihop packet may arrive
	// with; default DefaultMultihopMinTTL. Single hop always requires 255
	// and refuses another value.
	MinTTL uint8
	// DesiredMinTx and RequiredMinRx are the intervals the session offers
	// once Up (while not Up it sends at most once a second); default
	// DefaultInterval, at least MinInterval.
	DesiredMinTx, RequiredMinRx time.Duration
	// DetectMult is the detect multiplier the session advertises: the
	// peer declares it down after DetectMult intervals without a packet.
	// Default DefaultDetectMult.
	DetectMult uint8
	// Passive waits for the peer's first packet before sending any.
	Passive bool
	// OnChange, if set, is called from Run's goroutine on every state
	// change. It must not block: hand the change on (a buffered channel,
	// a queue) and return.
	OnChange func(Change)
	// Mux shares sockets among sessions; sessions on one local address
	// and port must share one. Default: a Mux of the session's own.
	Mux *Mux
	// Logger receives the session's logs; default: discard.
	Logger *slog.Logger
}

// Change is a session state change.
type Change struct {
	Peer     netip.Addr
	From, To State
	// Diag is the local diagnostic: why the session left Up (detection
	// time expired, the neighbor signaled down, administratively down).
	Diag Diag
	// RemoteState is the peer's state as its last packet told it.
	// Down with RemoteState AdminDown means the peer was shut on purpose:
	// RFC 5882 §3.2 asks clients (BGP) not to treat that as a failure.
	RemoteState State
	At          time.Time
}

// Session is one BFD session with a peer. Create it with New, run it with
// Run; State, Stats and Discriminator are safe to call at any time.
type Session struct {
	opts   Options
	log    *slog.Logger
	mux    *Mux
	minTTL uint8
	port   uint16

	discr   atomic.Uint32
	state   atomic.Uint32
	running atomic.Bool
	mute    atomic.Bool // tests: stop sending, as a crashed peer would

	rx chan received

	// SetIntervals hands new intervals to Run.
	mu        sync.Mutex
	intervals [2]time.Duration // desired min tx, required min rx
	kick      chan struct{}

	sent, recv, sendErrors, overflow, downs atomic.Uint64
}

// received is a packet the Mux matched to a session, with its arrival.
type received struct {
	p  Packet
	at time.Time
}

// New validates opts and returns a session that does nothing until Run.
func New(opts Options) (*Session, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Session{
		opts:   opts,
		log:    opts.Logger.With("component", "bfd", "peer", opts.Peer),
		mux:    opts.Mux,
		minTTL: opts.MinTTL,
		port:   SingleHopPort,
		rx:     make(chan received, 16),
		kick:   make(chan struct{}, 1),
	}
	s.intervals = [2]time.Duration{opts.DesiredMinTx, opts.RequiredMinRx}
	if opts.Multihop {
		s.port = MultihopPort
	}
	if s.mux == nil {
		s.mux = NewMux(opts.Logger)
	}
	s.state.Store(uint32(Down))
	return s, nil
}

func (o *Options) validate() error {
	if !o.Peer.IsValid() || o.Peer.IsUnspecified() || o.Peer.IsMulticast() {
		return fmt.Errorf("bfd peer %v: want a unicast address: %w", o.Peer, ErrInvalid)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bfd peer %s: %s: %w", o.Peer, fmt.Sprintf(format, args...), ErrInvalid)
	}
	if !o.Local.IsValid() || o.Local.IsUnspecified() || o.Local.IsMulticast() {
		return bad("local address %v: want a unicast address", o.Local)
	}
	if o.Local.Is4() != o.Peer.Is4() || o.Local.Is4In6() || o.Peer.Is4In6() {
		return bad("local address %s: not of the peer's family", o.Local)
	}
	if o.Peer.IsLinkLocalUnicast() && o.Peer.Is6() {
		if o.Multihop {
			return bad("multihop to a link-local address")
		}
		if o.Interface == "" && o.Peer.Zone() == "" {
			return bad("link-local peer without an interface")
		}
	}
	if o.Interface == "" {
		o.Interface = o.Peer.Zone()
	}
	if o.Interface != "" && len(o.Interface) >= 16 {
		return bad("interface name %q too long", o.Interface)
	}
	if o.Interface != "" && o.Peer.Is6() && o.Peer.IsLinkLocalUnicast() {
		o.Peer = o.Peer.WithZone(o.Interface)
		if o.Local.IsLinkLocalUnicast() {
			o.Local = o.Local.WithZone(o.Interface)
		}
	}
	if o.Multihop {
		if o.MinTTL == 0 {
			o.MinTTL = DefaultMultihopMinTTL
		}
	} else {
		if o.MinTTL != 0 && o.MinTTL != 255 {
			return bad("min ttl %d: single hop requires 255 (RFC 5881)", o.MinTTL)
		}
		o.MinTTL = 255
	}
	for _, iv := range []struct {
		name string
		d    *time.Duration
	}{{"desired min tx", &o.DesiredMinTx}, {"required min rx", &o.RequiredMinRx}} {
		if *iv.d == 0 {
			*iv.d = DefaultInterval
		}
		if *iv.d < MinInterval || *iv.d > maxInterval {
			return bad("%s %s: want %s to %s", iv.name, *iv.d, MinInterval, maxInterval.Truncate(time.Second))
		}
	}
	if o.DetectMult == 0 {
		o.DetectMult = DefaultDetectMult
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// State is the session's current state: Down before Run, AdminDown after.
func (s *Session) State() State { return State(s.state.Load()) }

// Discriminator is the session's local discriminator, 0 until Run has
// registered it with its Mux.
func (s *Session) Discriminator() uint32 { return s.discr.Load() }

// Peer is the session's remote address.
func (s *Session) Peer() netip.Addr { return s.opts.Peer }

// SessionStats counts a session's packets.
type SessionStats struct {
	Sent, Received, SendErrors uint64
	// Overflow counts packets dropped because Run fell behind.
	Overflow uint64
	// Downs counts changes from Up to another state.
	Downs uint64
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{Sent: s.sent.Load(), Received: s.recv.Load(), SendErrors: s.sendErrors.Load(), Overflow: s.overflow.Load(), Downs: s.downs.Load()}
}

// SetIntervals changes the intervals the session offers (Options'
// DesiredMinTx and RequiredMinRx, same limits). While Up the change goes
// through a Poll Sequence (RFC 5880 §6.8.3): a longer transmit interval
// or a shorter receive interval takes effect once the peer has answered.
// It may be called before or during Run.
func (s *Session) SetIntervals(desiredMinTx, requiredMinRx time.Duration) error {
	for _, d := range []time.Duration{desiredMinTx, requiredMinRx} {
		if d < MinInterval || d > maxInterval {
			return fmt.Errorf("bfd peer %s: interval %s: want %s to %s: %w", s.opts.Peer, d, MinInterval, maxInterval.Truncate(time.Second), ErrInvalid)
		}
	}
	s.mu.Lock()
	s.intervals = [2]time.Duration{desiredMinTx, requiredMinRx}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func (s *Session) currentIntervals() (tx, rx time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.intervals[0], s.intervals[1]
}

// deliver hands a matched packet to Run without blocking the Mux.
func (s *Session) deliver(r received) {
	select {
	case s.rx <- r:
	default:
		s.overflow.Add(1)
	}
}

// Run opens the session's sockets, in the network namespace of the calling
// thread, before it starts anything else, then runs the session until ctx
// ends. On the way out it sends AdminDown for up to a detection time (less
// when the peer acknowledges with Down) so the peer does not mistake the
// stop for a failure (RFC 5880 §6.8.16), closes its sockets and returns nil.
// Run may be called once.
func (s *Session) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("bfd peer %s: Run called twice", s.opts.Peer)
	}
	defer s.state.Store(uint32(AdminDown))
	if ctx.Err() != nil {
		return nil
	}
	if err := s.mux.attach(s); err != nil {
		return fmt.Errorf("bfd peer %s: %w", s.opts.Peer, err)
	}
	defer s.mux.detach(s)
	conn, err := openSender(s.opts.Local, s.opts.Interface)
	if err != nil {
		return fmt.Errorf("bfd peer %s: %w", s.opts.Peer, err)
	}
	defer conn.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.opts.Peer, s.port))

	tx, rx := s.currentIntervals()
	m := newFSM(fsmConfig{
		discr:         s.discr.Load(),
		desiredMinTx:  tx,
		requiredMinRx: rx,
		detectMult:    s.opts.DetectMult,
		passive:       s.opts.Passive,
	}, time.Now())
	s.log.Info("bfd session started", "local", s.opts.Local, "multihop", s.opts.Multihop,
		"discriminator", s.discr.Load(), "source_port", conn.LocalAddr().(*net.UDPAddr).Port)

	buf := make([]byte, 0, headerLen)
	failing := false // log the first send error of a run of them, and the end
	send := func(pkts []Packet) {
		for i := range pkts {
			if s.mute.Load() {
				continue
			}
			b, err := pkts[i].AppendTo(buf[:0])
			if err == nil {
				_, err = conn.WriteTo(b, dst)
			}
			if err != nil {
				s.sendErrors.Add(1)
				if !failing {
					s.log.Warn("bfd send failed", "err", err)
				}
				failing = true
				continue
			}
			if failing {
				s.log.Info("bfd send works again", "send_errors", s.sendErrors.Load())
			}
			failing = false
			s.sent.Add(1)
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func(now time.Time) {
		next := m.next()
		d := time.Hour
		if !next.IsZero() {
			d = max(0, next.Sub(now))
		}
		timer.Reset(d)
	}
	handle := func(r received) {
		s.recv.Add(1)
		m.receive(r.at, &r.p)
	}

	for {
		now := time.Now()
		send(m.step(now))
		s.report(m)
		arm(now)
		select {
		case <-ctx.Done():
			s.stop(m, send, handle)
			return nil
		case r := <-s.rx:
			handle(r)
		case <-s.kick:
			tx, rx := s.currentIntervals()
			m.setIntervals(time.Now(), tx, rx)
		case <-timer.C:
		}
	}
}

// stop sends AdminDown until the peer answers Down or a detection time
// passed.
func (s *Session) stop(m *fsm, send func([]Packet), handle func(received)) {
	was := m.state
	now := time.Now()
	m.adminDown(now)
	s.report(m)
	if was != Up && was != Init {
		return
	}
	// The peer's detection time for us (adminDown kept the interval).
	until := now.Add(time.Duration(s.opts.DetectMult) * m.txInterval())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	acked := false
	for {
		now := time.Now()
		send(m.step(now))
		if acked || !now.Before(until) {
			return
		}
		next := m.next()
		if next.IsZero() || next.After(until) {
			next = until
		}
		timer.Reset(max(0, next.Sub(now)))
		select {
		case r := <-s.rx:
			handle(r)
			acked = r.p.State == Down || r.p.State == AdminDown
		case <-timer.C:
		}
	}
}

// report publishes the fsm's state changes.
func (s *Session) report(m *fsm) {
	for _, c := range m.takeChanges() {
		s.state.Store(uint32(c.to))
		lvl := slog.LevelInfo
		if c.from == Up {
			lvl = slog.LevelWarn
			s.downs.Add(1)
		}
		s.log.Log(context.Background(), lvl, "bfd session state changed", "from", c.from, "to", c.to,
			"diag", c.diag, "remote_diag", m.remoteDiag)
		if s.opts.OnChange != nil {
			s.opts.OnChange(Change{Peer: s.opts.Peer, From: c.from, To: c.to, Diag: c.diag, RemoteState: c.remoteState, At: c.at})
		}
	}
}
