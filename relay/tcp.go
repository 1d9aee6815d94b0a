package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// tcpServer relays one TCP listener.
type tcpServer struct {
	r   *Relay
	l   Listener
	log *slog.Logger
	ln  net.Listener
	m   protoMetrics

	refusedListener, refusedSource, acceptErrors counter

	mu    sync.Mutex
	conns map[*net.TCPConn]struct{} // client and upstream sides, closed at drain end
	// admitted and perSource count the admitted connections (MaxTCPConns,
	// MaxTCPConnsPerSource), by sourceKey.
	admitted  int
	perSource map[netip.Prefix]int
	wg        sync.WaitGroup

	pipes *pipePool // splice pipes of the directions moving data (Linux)
}

func (r *Relay) openTCP(l Listener, log *slog.Logger) (*tcpServer, error) {
	ln, err := net.ListenTCP(network("tcp", l.Addr), net.TCPAddrFromAddrPort(l.Addr))
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s tcp %s: %w", l.Name, l.Addr, err)
	}
	r.setAddr(l.Name, ln.Addr().(*net.TCPAddr).AddrPort())
	return r.newTCPServer(l, log, ln), nil
}

func (r *Relay) newTCPServer(l Listener, log *slog.Logger, ln net.Listener) *tcpServer {
	return &tcpServer{
		r: r, l: l, log: log, ln: ln, m: r.metrics.forProto("tcp"),
		refusedListener: r.metrics.tcpRefused.WithLabelValues(l.Name, refusedListenerLimit),
		refusedSource:   r.metrics.tcpRefused.WithLabelValues(l.Name, refusedSourceLimit),
		acceptErrors:    r.metrics.acceptErrors.WithLabelValues(l.Name),
		conns:           map[*net.TCPConn]struct{}{}, perSource: map[netip.Prefix]int{},
		pipes: newPipePool(),
	}
}

// Accept back-off after an error (EMFILE, ENFILE, ENOBUFS...): from
// acceptBackoffMin doubling to acceptBackoffMax, so a relay out of
// descriptors waits for connections to end instead of spinning.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return acceptBackoffMin
	}
	return min(2*d, acceptBackoffMax)
}

func (s *tcpServer) close() { _ = s.ln.Close() }

func (s *tcpServer) serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	defer s.pipes.closeAll()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.drain()
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("relay: accept on %s: %w", s.l.Name, err)
			}
			delay = s.acceptFailed(ctx, delay, err)
			continue
		}
		delay = 0
		c := nc.(*net.TCPConn)
		key, ok := s.admit(c)
		if !ok {
			continue
		}
		s.track(c, true)
		s.wg.Go(func() {
			defer s.release(key)
			s.handle(ctx, c)
		})
	}
}

// acceptFailed counts a failed accept and waits the next back-off, which
// it returns (or until ctx ends).
func (s *tcpServer) acceptFailed(ctx context.Context, delay time.Duration, err error) time.Duration {
	s.acceptErrors.Add(1)
	delay = nextBackoff(delay)
	if delay == acceptBackoffMin {
		s.log.Warn("accept failed, backing off", "err", err)
	} else {
		s.log.Debug("accept failed, backing off", "err", err, "delay", delay)
	}
	select {
	case <-ctx.Done():
	case <-s.r.clock.After(delay):
	}
	return delay
}

// sourceKey is what MaxTCPConnsPerSource counts by: an IPv4 client's
// address, an IPv6 client's /64 (one host commonly holds a whole /64).
func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// admit takes c within the listener's and its source's limits, or resets
// and counts it.
func (s *tcpServer) admit(c *net.TCPConn) (netip.Prefix, bool) {
	key := sourceKey(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
	s.mu.Lock()
	var refused counter
	switch {
	case s.admitted >= s.r.opts.MaxTCPConns:
		refused = s.refusedListener
	case s.perSource[key] >= s.r.opts.MaxTCPConnsPerSource:
		refused = s.refusedSource
	default:
		s.admitted++
		s.perSource[key]++
	}
	s.mu.Unlock()
	if refused != nil {
		refused.Add(1)
		_ = c.SetLinger(0) // a reset: no TIME_WAIT left on the relay
		_ = c.Close()
		return key, false
	}
	return key, true
}

func (s *tcpServer) release(key netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admitted--
	if s.perSource[key]--; s.perSource[key] <= 0 {
		delete(s.perSource, key)
	}
}

// drain waits for the connections to end, up to DrainTimeout, then closes
// the rest.
func (s *tcpServer) drain() {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-s.r.clock.After(s.r.opts.DrainTimeout):
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.log.Info("drain deadline passed, closing connections", "conns", n)
	<-done
}

func (s *tcpServer) track(c *net.TCPConn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

func (s *tcpServer) handle(ctx context.Context, c *net.TCPConn) {
	defer s.track(c, false)
	defer c.Close()
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	up, b, first, err := s.open(ctx, c, client)
	if err != nil {
		s.m.drop(dropReason(err))
		s.log.Debug("no upstream", "client", client, "err", err)
		return
	}
	s.track(up, true)
	defer s.track(up, false)
	defer up.Close()
	if b.ProxyProtocol {
		if err := writeProxyHeader(up, client, local); err != nil {
			s.log.Debug("proxy header", "backend", b.Name, "err", err)
			return
		}
	}
	if err := s.writeFirst(up, first); err != nil {
		s.log.Debug("first bytes", "backend", b.Name, "err", err)
		return
	}
	s.m.active.Inc()
	defer s.m.active.Dec()
	s.pipe(c, up)
}

func dropReason(err error) string {
	switch {
	case errors.Is(err, ErrNoBackend):
		return dropNoBackend
	case localLimit(err):
		return dropLocalLimit
	}
	return dropUpstream
}

// localLimit reports an error that says the relay itself is out of a
// resource (descriptors, ephemeral ports, buffers), not that a backend
// failed: it never marks a backend down, which would drop every flow of a
// relay out of descriptors, the placed ones too.
func localLimit(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EADDRNOTAVAIL, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// dial connects to the backend owning client (or the one the token in
// first names); a backend that fails to accept is marked down and the next
// owner tried, up to three times.
func (s *tcpServer) dial(ctx context.Context, client netip.AddrPort, first []byte) (*net.TCPConn, *backend, error) {
	var errs []error
	for range 3 {
		b, err := s.r.place(s.l, client, first, s.m)
		if err != nil {
			return nil, nil, errors.Join(append(errs, err)...)
		}
		d := net.Dialer{Timeout: s.r.opts.ConnectTimeout}
		c, err := d.DialContext(ctx, "tcp", b.addr(s.l).String())
		if err == nil {
			return c.(*net.TCPConn), b, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if localLimit(err) { // no local port or descriptor (EADDRNOTAVAIL, EMFILE...)
			return nil, nil, fmt.Errorf("connect %s: %w", b.Name, err)
		}
		s.r.markDown(b, "tcp connect", err)
		errs = append(errs, fmt.Errorf("connect %s: %w", b.Name, err))
	}
	return nil, nil, errors.Join(errs...)
}

func writeProxyHeader(up *net.TCPConn, client, local netip.AddrPort) error {
	h, err := proxyHeader(TCP, client, local)
	if err != nil {
		return err
	}
	_, err = up.Write(h)
	return err
}

// pipe copies both ways until both directions ended, passing half-closes on.
// The connection is closed once neither direction has moved data for
// TCPIdleTimeout.
func (s *tcpServer) pipe(client, up *net.TCPConn) {
	var last atomic.Int64
	last.Store(s.r.clock.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Go(func() { s.copy(up, client, &last, s.m.bytesIn) })
	s.copy(client, up, &last, s.m.bytesOut)
	wg.Wait()
}

// copyChunk bounds one move elsewhere than on Linux (where one move is at
// most a pipe's size), so activity is recorded at least this often on a
// busy connection.
const copyChunk = 256 << 10

type counter interface{ Add(float64) }

func (s *tcpServer) copy(dst, src *net.TCPConn, last *atomic.Int64, bytes counter) {
	idle := s.r.opts.TCPIdleTimeout
	defer func() { _ = dst.CloseWrite() }()
	m, err := newMover(s.pipes, dst, src)
	if err != nil {
		_ = src.Close()
		_ = dst.Close()
		return
	}
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, err := m.move()
		if n > 0 {
			bytes.Add(float64(n))
			last.Store(s.r.clock.Now().UnixNano())
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return // the source half-closed
		case errors.Is(err, os.ErrDeadlineExceeded) && s.active(last, idle):
			continue
		default:
			// Idle or broken: end both directions.
			_ = src.Close()
			_ = dst.Close()
			return
		}
	}
}

// active reports whether either direction moved data within idle.
func (s *tcpServer) active(last *atomic.Int64, idle time.Duration) bool {
	return s.r.clock.Since(time.Unix(0, last.Load())) < idle
}
