package relay

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// localHeader is the PROXY protocol v2 LOCAL header: a connection of the
// relay's own (the active health check), with no client to name, so that a
// backend expecting PROXY headers reads a valid one instead of logging an
// error every health interval.
var localHeader = func() []byte {
	b, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		panic(err) // a constant header
	}
	return b
}()

// proxyHeader returns the PROXY protocol v2 header telling a backend that
// client connected to dst (both of one family: the client reached dst). For
// UDP it is sent in front of every datagram.
func proxyHeader(proto Protocol, client, dst netip.AddrPort) ([]byte, error) {
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	var src, dest net.Addr
	if proto == TCP {
		src, dest = net.TCPAddrFromAddrPort(client), net.TCPAddrFromAddrPort(dst)
	} else {
		src, dest = net.UDPAddrFromAddrPort(client), net.UDPAddrFromAddrPort(dst)
	}
	h := proxyproto.HeaderProxyFromAddrs(2, src, dest)
	b, err := h.Format()
	if err != nil {
		return nil, fmt.Errorf("proxy protocol header for %s: %w", client, err)
	}
	return b, nil
}
