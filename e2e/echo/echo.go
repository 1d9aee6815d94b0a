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
)

// Ready is printed on its own line once every listener is open.
const Ready = "echo: ready"

// Options says where to listen; an empty address disables that protocol.
type Options struct {
	TCP, UDP string
	Logger   *slog.Logger
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
		wg.Go(func() { serveTCP(ctx, l, opts.Logger) })
	}
	if opts.UDP != "" {
		c, err := net.ListenPacket("udp", opts.UDP)
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		wg.Go(func() { serveUDP(ctx, c) })
	}
	fmt.Fprintln(out, Ready)
	<-ctx.Done()
	return nil
}

func serveTCP(ctx context.Context, l net.Listener, log *slog.Logger) {
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
			if _, err := io.Copy(c, c); err != nil {
				log.Debug("echo tcp", "err", err)
			}
		}()
	}
}

func serveUDP(ctx context.Context, c net.PacketConn) {
	go func() { <-ctx.Done(); c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(buf[:n], from)
	}
}
