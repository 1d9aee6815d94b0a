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
	"time"
)

// tcpServer relays one TCP listener.
type tcpServer struct {
	r   *Relay
	l   Listener
	log *slog.Logger
	ln  *net.TCPListener
	m   protoMetrics

	mu    sync.Mutex
	conns map[*net.TCPConn]struct{} // client and upstream sides, closed at drain end
	wg    sync.WaitGroup
}

func (r *Relay) openTCP(l Listener, log *slog.Logger) (*tcpServer, error) {
	ln, err := net.ListenTCP(network("tcp", l.Addr), net.TCPAddrFromAddrPort(l.Addr))
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s tcp %s: %w", l.Name, l.Addr, err)
	}
	r.setAddr(l.Name, ln.Addr().(*net.TCPAddr).AddrPort())
	return &tcpServer{r: r, l: l, log: log, ln: ln, m: r.metrics.forProto("tcp"), conns: map[*net.TCPConn]struct{}{}}, nil
}

func (s *tcpServer) close() { _ = s.ln.Close() }

func (s *tcpServer) serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				s.drain()
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("relay: accept on %s: %w", s.l.Name, err)
			}
			s.log.Warn("accept", "err", err)
			continue
		}
		s.track(c, true)
		s.wg.Go(func() { s.handle(ctx, c) })
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
	if errors.Is(err, ErrNoBackend) {
		return dropNoBackend
	}
	return dropUpstream
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

// copyChunk bounds one io.Copy so activity is recorded at least this often
// on a busy connection; the copy itself may still splice.
const copyChunk = 256 << 10

type counter interface{ Add(float64) }

func (s *tcpServer) copy(dst, src *net.TCPConn, last *atomic.Int64, bytes counter) {
	idle := s.r.opts.TCPIdleTimeout
	defer func() { _ = dst.CloseWrite() }()
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, err := io.Copy(dst, &io.LimitedReader{R: src, N: copyChunk})
		if n > 0 {
			bytes.Add(float64(n))
			last.Store(s.r.clock.Now().UnixNano())
		}
		switch {
		case err == nil && n == copyChunk:
			continue
		case err == nil:
			return // EOF: the source half-closed
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
