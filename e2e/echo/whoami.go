package echo

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/pires/go-proxyproto"
)

// The identity ("whoami") mode of a server with Options.Name: it answers
// with its name and the client address it sees, the source of the packets
// or, with Options.ProxyProtocol, the source the PROXY v2 header names.
//
//	TCP: "<name> <client>\n" once connected, then an echo of the stream
//	UDP: "<name> <client> <payload>" for every datagram

// echoTCP serves one connection.
func echoTCP(c net.Conn, opts Options) error {
	if opts.Name == "" {
		_, err := io.Copy(c, c)
		return err
	}
	r := bufio.NewReader(c)
	client := c.RemoteAddr().String()
	if opts.ProxyProtocol {
		h, err := proxyproto.Read(r)
		if err != nil {
			return fmt.Errorf("PROXY header from %s: %w", client, err)
		}
		if h.Command.IsLocal() {
			return nil // the relay's health check: no client to answer
		}
		client = h.SourceAddr.String()
	}
	if _, err := fmt.Fprintf(c, "%s %s\n", opts.Name, client); err != nil {
		return err
	}
	_, err := io.Copy(c, r)
	return err
}

// whoamiUDP is the reply to one datagram; false drops it (a datagram
// without the PROXY header a PROXY server expects).
func whoamiUDP(opts Options, p []byte, from net.Addr) ([]byte, bool) {
	client := from.String()
	if opts.ProxyProtocol {
		r := bufio.NewReader(bytes.NewReader(p))
		h, err := proxyproto.Read(r)
		if err != nil {
			return nil, false
		}
		client = h.SourceAddr.String()
		p, _ = io.ReadAll(r)
	}
	return fmt.Appendf(nil, "%s %s %s", opts.Name, client, p), true
}

// Whoami is a parsed identity reply.
type Whoami struct {
	Name    string
	Client  netip.AddrPort // the client the server saw
	Payload string         // UDP: the payload echoed
}

// ParseWhoami reads "<name> <client>[ <payload>]".
func ParseWhoami(s string) (Whoami, error) {
	name, rest, ok := strings.Cut(strings.TrimSuffix(s, "\n"), " ")
	if !ok {
		return Whoami{}, fmt.Errorf("whoami reply %q: want name and client", s)
	}
	client, payload, _ := strings.Cut(rest, " ")
	ap, err := netip.ParseAddrPort(client)
	if err != nil {
		return Whoami{}, fmt.Errorf("whoami reply %q: %w", s, err)
	}
	return Whoami{Name: name, Client: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), Payload: payload}, nil
}
