package echo

import (
	"context"
	"fmt"
	"io"
	"net"
)

// DialFunc opens a connection, e.g. lab.Host.Dial from inside a namespace.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// RoundTrip sends one message to an echo server at addr over network and
// checks that the same bytes come back before ctx ends.
func RoundTrip(ctx context.Context, dial DialFunc, network, addr string) error {
	c, err := dial(ctx, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	msg := "call over " + network + " to " + addr
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("%s %s: %w", network, addr, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("%s %s: %w", network, addr, err)
	}
	if string(buf) != msg {
		return fmt.Errorf("%s %s: echoed %q, want %q", network, addr, buf, msg)
	}
	return nil
}
