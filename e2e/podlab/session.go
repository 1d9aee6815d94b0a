package podlab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
)

// Session is a call's signalling: a TCP connection from one host to a
// calling-server stand-in, a line every 50 ms echoed back. When the
// connection breaks it dials again at once, as a calling client would.
type Session struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	echoes  []time.Time
	conns   []SessionConn
	lost    []string // why established connections ended
	refused int      // dials that failed
}

// SessionConn is one connection of a session: whom it reached and as
// which client.
type SessionConn struct {
	Server string
	Client netip.AddrPort // the client the server saw
	Local  netip.AddrPort // the client's own end
}

// SessionStats sums up a session.
type SessionStats struct {
	Echoes int
	// Lost are the established connections lost while the session ran,
	// with why; FailedDials the attempts to connect again that failed.
	Lost        []string
	FailedDials int
	// LongestOutage is the longest time without an echo, from the first
	// echo to the end of the session.
	LongestOutage time.Duration
	Conns         []SessionConn
}

func (s SessionStats) String() string {
	return fmt.Sprintf("echoes %d, connections lost %d %q, failed dials %d, longest outage %v, connections %v",
		s.Echoes, len(s.Lost), s.Lost, s.FailedDials, s.LongestOutage.Round(time.Millisecond), s.Conns)
}

// StartSession starts a session from h to dst.
func StartSession(h *lab.Host, dst netip.AddrPort) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{cancel: cancel, done: make(chan struct{})}
	go s.run(ctx, h, dst)
	return s
}

func (s *Session) run(ctx context.Context, h *lab.Host, dst netip.AddrPort) {
	defer close(s.done)
	for ctx.Err() == nil {
		c, err := h.Dial(ctx, "tcp", dst.String())
		if err != nil {
			s.fail(ctx, func() { s.refused++ })
			continue
		}
		err = s.serve(ctx, c)
		c.Close()
		s.fail(ctx, func() { s.lost = append(s.lost, err.Error()) })
	}
}

// fail records, unless the session itself ended, why a connection ended
// or could not start, and waits a little before the next dial.
func (s *Session) fail(ctx context.Context, record func()) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	record()
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// serve reads the server's identity line, then sends a line every 50 ms
// and waits for its echo.
func (s *Session) serve(ctx context.Context, c net.Conn) error {
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	w, err := echo.ParseWhoami(line)
	if err != nil {
		return err
	}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	s.mu.Lock()
	s.conns = append(s.conns, SessionConn{Server: w.Name, Client: w.Client, Local: local})
	s.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		want := fmt.Sprintf("signal-%d\n", seq)
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte(want)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		if got != want {
			return fmt.Errorf("echo %q, want %q", got, want)
		}
		s.mu.Lock()
		s.echoes = append(s.echoes, time.Now())
		s.mu.Unlock()
	}
}

// Echoes returns how many lines came back.
func (s *Session) Echoes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.echoes)
}

// Stats sums up the session so far; now ends the last outage.
func (s *Session) Stats(now time.Time) SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SessionStats{Echoes: len(s.echoes), Lost: slices.Clone(s.lost), FailedDials: s.refused, Conns: slices.Clone(s.conns)}
	for i := 1; i < len(s.echoes); i++ {
		st.LongestOutage = max(st.LongestOutage, s.echoes[i].Sub(s.echoes[i-1]))
	}
	if n := len(s.echoes); n > 0 {
		st.LongestOutage = max(st.LongestOutage, now.Sub(s.echoes[n-1]))
	}
	return st
}

// Stop ends the session and returns its stats.
func (s *Session) Stop() SessionStats {
	now := time.Now()
	s.cancel()
	<-s.done
	return s.Stats(now)
}
