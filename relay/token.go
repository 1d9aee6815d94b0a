package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// TokenOptions configures the routing token: a byte range of a new flow's
// first UDP datagram or first TCP bytes that names its backend (matched
// against Backend.Name), so a client that knows its call's server reaches
// it through any relay. A flow whose token names no backend that is up is
// placed by Maglev.
type TokenOptions struct {
	// Offset is where the token starts in the payload.
	Offset int
	// Length is the token's size in bytes, at most MaxTokenLength; 0 turns
	// the token off. Trailing NUL and space bytes are not part of the name.
	Length int
	// Timeout bounds the wait for a TCP client's first Offset+Length bytes
	// before the connection is placed without them; default
	// DefaultTokenTimeout.
	Timeout time.Duration
}

// Routing token limits and defaults.
const (
	MaxTokenLength = 63
	// MaxTokenOffset bounds what a TCP connection reads before it is
	// placed, and keeps Offset+Length from overflowing (config's limit).
	MaxTokenOffset      = 1024
	DefaultTokenTimeout = time.Second
)

// Token results, the result label of pier_relay_token_routed_total.
const (
	tokenRouted  = "routed"  // the named backend took the flow
	tokenUnknown = "unknown" // no backend of that name
	tokenDown    = "down"    // the named backend is down
	tokenShort   = "short"   // the payload ends before the token does
)

func (t TokenOptions) enabled() bool { return t.Length > 0 }

// end is the payload size the token needs.
func (t TokenOptions) end() int { return t.Offset + t.Length }

func (t TokenOptions) validate() error {
	if t.Offset < 0 || t.Offset > MaxTokenOffset || t.Length < 0 || t.Length > MaxTokenLength || t.Timeout < 0 {
		return fmt.Errorf("relay: token offset %d, length %d, timeout %v: want offset 0 to %d, length 0 to %d, timeout at least 0",
			t.Offset, t.Length, t.Timeout, MaxTokenOffset, MaxTokenLength)
	}
	return nil
}

// extract returns the name the token in p carries, false when p is too
// short to hold the token.
func (t TokenOptions) extract(p []byte) ([]byte, bool) {
	if len(p) < t.end() {
		return nil, false
	}
	return bytes.TrimRight(p[t.Offset:t.end()], "\x00 "), true
}

// ParseToken reads a token written as "offset:length", for example "4:16"
// (the standalone command line form).
func ParseToken(s string) (TokenOptions, error) {
	o, l, ok := strings.Cut(s, ":")
	off, err1 := strconv.Atoi(o)
	n, err2 := strconv.Atoi(l)
	if !ok || err1 != nil || err2 != nil {
		return TokenOptions{}, fmt.Errorf("token %q: want offset:length", s)
	}
	t := TokenOptions{Offset: off, Length: n}
	if err := t.validate(); err != nil {
		return TokenOptions{}, fmt.Errorf("token %q: %w", s, err)
	}
	return t, nil
}

// tokenBackend returns the up backend the token in first names, with the
// result to count; nil when there is none.
func (r *Relay) tokenBackend(first []byte) (*backend, string) {
	name, ok := r.opts.Token.extract(first)
	if !ok {
		return nil, tokenShort
	}
	b := r.plane.Load().backends[string(name)] // no allocation: the compiler reads the bytes in place
	switch {
	case b == nil:
		return nil, tokenUnknown
	case !b.up.Load():
		return nil, tokenDown
	}
	return b, tokenRouted
}

// place picks the backend of a new flow on l: the one its token names when
// that one is up, else the Maglev owner of client. first is the flow's
// first payload; nil places by Maglev alone (the token off, or a flow
// placed again after its backend went down).
func (r *Relay) place(l Listener, client netip.AddrPort, first []byte, m protoMetrics) (*backend, error) {
	if !r.opts.Token.enabled() || first == nil {
		return r.pick(l, client)
	}
	b, result := r.tokenBackend(first)
	if b != nil && b.weight(l.Name) == 0 {
		b, result = nil, tokenDown // no new flow on this listener
	}
	m.token(result)
	if b != nil {
		return b, nil
	}
	return r.pick(l, client)
}

func (p protoMetrics) token(result string) { p.tokens.WithLabelValues(p.proto, result).Inc() }

// readFirst reads a TCP client's first bytes, up to the token's end, for at
// most the token timeout. It returns what arrived (not nil, maybe empty) or
// nil when the token is off; an error only when the connection failed.
func (s *tcpServer) readFirst(c *net.TCPConn) ([]byte, error) {
	t := s.r.opts.Token
	if !t.enabled() {
		return nil, nil
	}
	buf := make([]byte, t.end())
	_ = c.SetReadDeadline(time.Now().Add(t.Timeout))
	n, err := io.ReadFull(c, buf)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		!errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("read first bytes: %w", err)
	}
	return buf[:n], nil
}

// open reads the client's first bytes when a token is configured, then
// connects to the flow's backend.
func (s *tcpServer) open(ctx context.Context, c *net.TCPConn, client netip.AddrPort) (*net.TCPConn, *backend, []byte, error) {
	first, err := s.readFirst(c)
	if err != nil {
		return nil, nil, nil, err
	}
	up, b, err := s.dial(ctx, client, first)
	return up, b, first, err
}

// writeFirst sends the client bytes read for the token to the backend.
func (s *tcpServer) writeFirst(up *net.TCPConn, first []byte) error {
	if len(first) == 0 {
		return nil
	}
	if _, err := up.Write(first); err != nil {
		return fmt.Errorf("write first bytes: %w", err)
	}
	s.m.bytesIn.Add(float64(len(first)))
	return nil
}
