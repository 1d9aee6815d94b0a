package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// SinkReady is printed on its own line once every listener is open.
const SinkReady = "sink: ready"

// SinkOptions says where the sink listens; an empty address turns that part
// off. Addresses should be specific (not wildcards): UDP echoes leave from
// the socket's address.
type SinkOptions struct {
	UDP        string // UDP echo
	TCPEcho    string // TCP echo
	TCPDiscard string // TCP: read everything, then close
	// Workers is the number of UDP sockets sharing the port (SO_REUSEPORT,
	// the kernel spreads flows over them); default 2.
	Workers int
	Batch   int // datagrams per recvmmsg/sendmmsg; default 64
	Logger  *slog.Logger
}

// Sink is the backend of a benchmark: a UDP echo that reads and writes in
// batches, a TCP echo and a TCP discard server. It must be faster than what
// is measured in front of it; a benchmark's direct path (client to sink)
// shows its limit.
type Sink struct {
	opts  SinkOptions
	log   *slog.Logger
	ready chan struct{}
	mu    sync.Mutex
	addrs map[string]netip.AddrPort
}

// Sink parts, for Addr.
const (
	PartUDP        = "udp"
	PartTCPEcho    = "tcp-echo"
	PartTCPDiscard = "tcp-discard"
)

// Ready is closed once every listener is open.
func (s *Sink) Ready() <-chan struct{} { return s.ready }

// Addr is the address a part listens on (with the real port when asked for
// port 0), once Ready.
func (s *Sink) Addr(part string) netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[part]
}

func (s *Sink) setAddr(part string, a net.Addr) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	s.mu.Lock()
	s.addrs[part] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.mu.Unlock()
}

// NewSink validates opts; it opens nothing.
func NewSink(opts SinkOptions) (*Sink, error) {
	if opts.UDP == "" && opts.TCPEcho == "" && opts.TCPDiscard == "" {
		return nil, errors.New("sink: nothing to listen on")
	}
	for _, a := range []string{opts.UDP, opts.TCPEcho, opts.TCPDiscard} {
		if _, err := netip.ParseAddrPort(a); a != "" && err != nil {
			return nil, fmt.Errorf("sink: address %q: %w", a, err)
		}
	}
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	if opts.Batch == 0 {
		opts.Batch = 64
	}
	if opts.Workers < 1 || opts.Batch < 1 || opts.Batch > 1024 {
		return nil, fmt.Errorf("sink: %d workers, batch %d: want at least 1 and a batch up to 1024", opts.Workers, opts.Batch)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sink{opts: opts, log: opts.Logger.With("component", "sink"), ready: make(chan struct{}), addrs: map[string]netip.AddrPort{}}, nil
}

// Run serves until ctx ends; it writes SinkReady to ready once listening.
func (s *Sink) Run(ctx context.Context, ready io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: ends the servers
	if a := s.opts.UDP; a != "" {
		for range s.opts.Workers {
			c, err := listenReusePort(ctx, a)
			if err != nil {
				return err
			}
			closers = append(closers, c)
			s.setAddr(PartUDP, c.LocalAddr())
			a = c.LocalAddr().String() // the other workers share its port
			wg.Go(func() { s.echoUDP(c) })
		}
	}
	for _, l := range []struct {
		part, addr string
		serve      func(*net.TCPConn)
	}{{PartTCPEcho, s.opts.TCPEcho, echoTCP}, {PartTCPDiscard, s.opts.TCPDiscard, discardTCP}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		closers = append(closers, ln)
		s.setAddr(l.part, ln.Addr())
		wg.Go(func() { s.serveTCP(ctx, ln.(*net.TCPListener), l.serve) })
	}
	close(s.ready)
	fmt.Fprintln(ready, SinkReady)
	<-ctx.Done()
	for _, c := range closers {
		c.Close()
	}
	return nil
}

func listenReusePort(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	c := pc.(*net.UDPConn)
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	return c, nil
}

// echoUDP returns every datagram to its sender, a batch at a time.
func (s *Sink) echoUDP(c *net.UDPConn) {
	var bc batchConn = ipv4.NewPacketConn(c)
	if c.LocalAddr().(*net.UDPAddr).IP.To4() == nil {
		bc = ipv6.NewPacketConn(c)
	}
	in := messages(s.opts.Batch, 65536)
	out := make([]ipv4.Message, s.opts.Batch)
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		for i, m := range in[:n] {
			out[i] = ipv4.Message{Buffers: [][]byte{m.Buffers[0][:m.N]}, Addr: m.Addr}
		}
		for sent := 0; sent < n; {
			k, err := bc.WriteBatch(out[sent:n], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				k = max(k, 1) // skip the datagram that failed
			}
			sent += k
		}
	}
}

func (s *Sink) serveTCP(ctx context.Context, ln *net.TCPListener, serve func(*net.TCPConn)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("accept", "err", err)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		wg.Go(func() {
			defer stop()
			defer c.Close()
			serve(c)
		})
	}
}

// echoTCP copies the connection back to itself (the kernel may splice).
func echoTCP(c *net.TCPConn) {
	_ = c.SetNoDelay(true)
	_, _ = io.Copy(c, c)
}

// discardTCP reads until EOF and closes: the close tells the sender that
// everything it wrote was read.
// Reads are large: io.Discard's 8 KiB would cost the sink a system call per
// 8 KiB.
func discardTCP(c *net.TCPConn) {
	buf := make([]byte, 256<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
