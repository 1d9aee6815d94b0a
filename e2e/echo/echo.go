// Package echo is a tiny TCP and UDP echo server that lab tests run inside
// hosts as real processes, to prove a path works end to end.
package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ready is printed on its own line once every listener is open.
const Ready = "echo: ready"

// Options says where to listen; an empty address disables that protocol.
type Options struct {
	TCP, UDP string
	// Name, when set, makes the server say who it is and whom it sees
	// instead of echoing plainly (see whoami.go): a calling-server stand-in.
	Name string
	// ProxyProtocol expects a PROXY protocol v2 header before the TCP
	// stream and in front of every UDP datagram, and reports the client it
	// names (with Name only).
	ProxyProtocol bool
	Logger        *slog.Logger
}

// Serve echoes until ctx ends. It writes Ready to out once listening.
func Serve(ctx context.Context, opts Options, out io.Writer) error {
	if opts.TCP == "" && opts.UDP == "" {
		return errors.New("echo: nothing to listen on")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.TCP != "" {
		l, err := net.Listen("tcp", opts.TCP)
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		wg.Go(func() { serveTCP(ctx, l, opts) })
	}
	if opts.UDP != "" {
		conns, err := listenUDP(opts.UDP)
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		for _, c := range conns {
			wg.Go(func() { serveUDP(ctx, c, opts) })
		}
	}
	fmt.Fprintln(out, Ready)
	<-ctx.Done()
	return nil
}

func serveTCP(ctx context.Context, l net.Listener, opts Options) {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			if err := echoTCP(c, opts); err != nil {
				opts.Logger.Debug("echo tcp", "err", err)
			}
		}()
	}
}

// udpConn reads datagrams with their destination address and replies from
// that address: a server bound to a wildcard must, or replies to a
// LoadBalancer address would leave from the node's own address and be
// dropped by the client.
type udpConn interface {
	read(b []byte) (n int, from net.Addr, dst net.IP, err error)
	reply(b []byte, to net.Addr, src net.IP) error
	Close() error
}

type udp4 struct{ *ipv4.PacketConn }

func (c udp4) read(b []byte) (int, net.Addr, net.IP, error) {
	n, cm, from, err := c.ReadFrom(b)
	if cm == nil {
		return n, from, nil, err
	}
	return n, from, cm.Dst, err
}

func (c udp4) reply(b []byte, to net.Addr, src net.IP) error {
	_, err := c.WriteTo(b, &ipv4.ControlMessage{Src: src}, to)
	return err
}

type udp6 struct{ *ipv6.PacketConn }

func (c udp6) read(b []byte) (int, net.Addr, net.IP, error) {
	n, cm, from, err := c.ReadFrom(b)
	if cm == nil {
		return n, from, nil, err
	}
	return n, from, cm.Dst, err
}

func (c udp6) reply(b []byte, to net.Addr, src net.IP) error {
	_, err := c.WriteTo(b, &ipv6.ControlMessage{Src: src}, to)
	return err
}

// listenUDP opens one IPv4 and one IPv6 socket for a wildcard address, or
// one for a specific address.
func listenUDP(addr string) ([]udpConn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var out []udpConn
	ip := net.ParseIP(host)
	if host == "" || ip.To4() != nil {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, err
		}
		pc := ipv4.NewPacketConn(c)
		out = append(out, udp4{pc})
		_ = pc.SetControlMessage(ipv4.FlagDst, true)
	}
	if host == "" || (ip != nil && ip.To4() == nil) {
		c, err := net.ListenPacket("udp6", addr)
		if err != nil {
			return nil, err
		}
		pc := ipv6.NewPacketConn(c)
		out = append(out, udp6{pc})
		_ = pc.SetControlMessage(ipv6.FlagDst, true)
	}
	return out, nil
}

func serveUDP(ctx context.Context, c udpConn, opts Options) {
	go func() { <-ctx.Done(); c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, from, dst, err := c.read(buf)
		if err != nil {
			return
		}
		reply, ok := buf[:n], true
		if opts.Name != "" {
			reply, ok = whoamiUDP(opts, buf[:n], from)
		}
		if ok {
			_ = c.reply(reply, from, dst)
		}
	}
}
