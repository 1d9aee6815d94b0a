package bfd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Mux shares receive sockets among sessions and hands each packet to its
// session: by Your Discriminator, or, while that is still zero, by the
// (local address, peer address, port) the packet came on. It opens one
// socket per local address and port when the first session on it starts
// and closes it when the last one stops. A Mux belongs to one network
// namespace (the one its first session's Run was called in). Its zero
// value is not usable; call NewMux.
type Mux struct {
	log *slog.Logger

	mu        sync.Mutex
	listeners map[listenKey]*listener
	byDiscr   map[uint32]*Session
	byPeer    map[peerKey]*Session

	received, malformed, auth, badTTL, unknown atomic.Uint64
}

// listenKey names a receive socket. local carries a zone only when it is
// link-local.
type listenKey struct {
	local netip.Addr
	port  uint16
}

// peerKey names a session for packets with Your Discriminator 0: the
// socket they came on and the peer (without a zone: the socket's local
// address carries the interface where it matters).
type peerKey struct {
	listenKey
	peer netip.Addr
}

type listener struct {
	conn *net.UDPConn
	read func(b []byte) (n int, src netip.Addr, ttl int, err error)
	refs int
	done chan struct{}
}

// NewMux returns a Mux that logs to logger (nil: discard).
func NewMux(logger *slog.Logger) *Mux {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Mux{
		log:       logger.With("component", "bfd"),
		listeners: map[listenKey]*listener{},
		byDiscr:   map[uint32]*Session{},
		byPeer:    map[peerKey]*Session{},
	}
}

// MuxStats counts what a Mux received and what it dropped before any
// session saw it.
type MuxStats struct {
	Received uint64
	// Malformed packets failed RFC 5880 §6.8.6's checks.
	Malformed uint64
	// Authentication counts packets with the A bit: this implementation
	// has no authentication and drops them.
	Authentication uint64
	// BadTTL counts packets below the session's minimum TTL/hop limit
	// (255 for single hop, RFC 5881 §5).
	BadTTL uint64
	// UnknownSession counts packets that matched no session (an unknown
	// discriminator, or one of another peer's session).
	UnknownSession uint64
}

// Stats returns the Mux's counters.
func (m *Mux) Stats() MuxStats {
	return MuxStats{
		Received: m.received.Load(), Malformed: m.malformed.Load(), Authentication: m.auth.Load(),
		BadTTL: m.badTTL.Load(), UnknownSession: m.unknown.Load(),
	}
}

// sessions lists the running sessions.
func (m *Mux) sessions() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Session, 0, len(m.byDiscr))
	for _, s := range m.byDiscr {
		out = append(out, s)
	}
	return out
}

func keysOf(s *Session) (listenKey, peerKey) {
	local := s.opts.Local
	if !local.IsLinkLocalUnicast() {
		local = local.WithZone("")
	}
	lk := listenKey{local: local, port: s.port}
	return lk, peerKey{listenKey: lk, peer: s.opts.Peer.WithZone("")}
}

// attach registers s, gives it a discriminator and opens the receive socket
// if s is the first session on its address and port.
func (m *Mux) attach(s *Session) error {
	lk, pk := keysOf(s)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byPeer[pk]; ok {
		return fmt.Errorf("a session from %s to %s on port %d runs already", pk.local, s.opts.Peer, pk.port)
	}
	l := m.listeners[lk]
	if l == nil {
		var err error
		if l, err = listen(lk); err != nil {
			return err
		}
		m.listeners[lk] = l
		go m.readLoop(lk, l)
	}
	l.refs++
	var d uint32
	for d == 0 || m.byDiscr[d] != nil {
		d = rand.Uint32()
	}
	s.discr.Store(d)
	m.byDiscr[d] = s
	m.byPeer[pk] = s
	return nil
}

// detach unregisters s and closes its receive socket if no other session
// uses it.
func (m *Mux) detach(s *Session) {
	lk, pk := keysOf(s)
	m.mu.Lock()
	delete(m.byDiscr, s.discr.Load())
	delete(m.byPeer, pk)
	l := m.listeners[lk]
	l.refs--
	last := l.refs == 0
	if last {
		delete(m.listeners, lk)
	}
	m.mu.Unlock()
	if last {
		l.conn.Close()
		<-l.done
	}
}

func (m *Mux) readLoop(lk listenKey, l *listener) {
	defer close(l.done)
	buf := make([]byte, 1500)
	failing := false // log the first error of a run of them
	for {
		n, src, ttl, err := l.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !failing {
				m.log.Warn("bfd receive failed", "local", lk.local, "port", lk.port, "err", err)
			}
			failing = true
			time.Sleep(10 * time.Millisecond) // no busy loop on a persistent error
			continue
		}
		failing = false
		m.dispatch(lk, buf[:n], src, ttl)
	}
}

func (m *Mux) dispatch(lk listenKey, b []byte, src netip.Addr, ttl int) {
	m.received.Add(1)
	// Single hop: every session needs 255, check before parsing.
	if lk.port == SingleHopPort && ttl != 255 {
		m.badTTL.Add(1)
		return
	}
	p, err := Parse(b)
	if err != nil {
		if errors.Is(err, ErrAuthentication) {
			m.auth.Add(1)
		} else {
			m.malformed.Add(1)
		}
		m.log.Debug("bfd packet dropped", "from", src, "err", err)
		return
	}
	pk := peerKey{listenKey: lk, peer: src.WithZone("")}
	m.mu.Lock()
	var s *Session
	if p.YourDiscriminator != 0 {
		s = m.byDiscr[p.YourDiscriminator]
		if s != nil {
			if _, spk := keysOf(s); spk != pk {
				s = nil // another peer's discriminator
			}
		}
	} else {
		s = m.byPeer[pk]
	}
	m.mu.Unlock()
	if s == nil {
		m.unknown.Add(1)
		m.log.Debug("bfd packet for no session", "from", src, "your_discriminator", p.YourDiscriminator)
		return
	}
	if ttl < int(s.minTTL) {
		m.badTTL.Add(1)
		return
	}
	s.deliver(received{p: p, at: time.Now()})
}

// listen opens a receive socket that reports each packet's TTL or hop
// limit.
func listen(lk listenKey) (*listener, error) {
	network := "udp4"
	if lk.local.Is6() {
		network = "udp6"
	}
	addr := netip.AddrPortFrom(lk.local, lk.port).String()
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen for bfd: %w", err)
	}
	conn := pc.(*net.UDPConn)
	l := &listener{conn: conn, done: make(chan struct{})}
	if lk.local.Is4() {
		p := ipv4.NewPacketConn(conn)
		if err := p.SetControlMessage(ipv4.FlagTTL, true); err != nil {
			conn.Close()
			return nil, fmt.Errorf("listen for bfd on %s: IP_RECVTTL: %w", addr, err)
		}
		l.read = func(b []byte) (int, netip.Addr, int, error) {
			n, cm, src, err := p.ReadFrom(b)
			return n, addrOf(src), ttlOf(cm != nil, func() int { return cm.TTL }), err
		}
	} else {
		p := ipv6.NewPacketConn(conn)
		if err := p.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
			conn.Close()
			return nil, fmt.Errorf("listen for bfd on %s: IPV6_RECVHOPLIMIT: %w", addr, err)
		}
		l.read = func(b []byte) (int, netip.Addr, int, error) {
			n, cm, src, err := p.ReadFrom(b)
			return n, addrOf(src), ttlOf(cm != nil, func() int { return cm.HopLimit }), err
		}
	}
	return l, nil
}

// ttlOf is -1 (fails every check) when the kernel reported none.
func ttlOf(ok bool, f func() int) int {
	if !ok {
		return -1
	}
	return f()
}

func addrOf(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Source ports for control packets (RFC 5881 §4).
const (
	minSourcePort = 49152
	maxSourcePort = 65535
)

// openSender opens the session's sending socket: bound to local and a free
// source port from 49152-65535 (the same for the session's life), TTL or
// hop limit 255, traffic class CS6 like other routing protocols, bound to
// iface if set.
func openSender(local netip.Addr, iface string) (*net.UDPConn, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: bindToDevice(iface)}
	var lastErr error
	for range 64 {
		port := uint16(minSourcePort + rand.IntN(maxSourcePort-minSourcePort+1))
		pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(local, port).String())
		if errors.Is(err, syscall.EADDRINUSE) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open bfd sender on %s: %w", local, err)
		}
		conn := pc.(*net.UDPConn)
		if local.Is4() {
			p := ipv4.NewConn(conn)
			err = errors.Join(p.SetTTL(255), p.SetTOS(0xc0))
		} else {
			p := ipv6.NewConn(conn)
			err = errors.Join(p.SetHopLimit(255), p.SetTrafficClass(0xc0))
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("open bfd sender on %s: %w", local, err)
		}
		return conn, nil
	}
	return nil, fmt.Errorf("open bfd sender on %s: no free source port: %w", local, lastErr)
}
