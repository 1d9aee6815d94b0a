//go:build !linux

package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// read relays the datagrams arriving on one listener socket.
func (s *udpServer) read(ctx context.Context, conn *net.UDPConn) error {
	buf := make([]byte, headroom+s.r.opts.MaxDatagramSize)
	oob := make([]byte, 128)
	for {
		n, oobn, flags, from, err := conn.ReadMsgUDPAddrPort(buf[headroom:], oob)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("relay: read %s: %w", s.l.Name, err)
			}
			continue
		}
		if flags&unix.MSG_TRUNC != 0 {
			s.m.drop(dropTooBig)
			continue
		}
		dst := s.local.Addr()
		if s.wildcard {
			if d, ok := pktinfoDst(oob[:oobn]); ok {
				dst = d
			}
		}
		s.forward(conn, from, netip.AddrPortFrom(dst, s.local.Port()), buf, n)
	}
}

// replies sends the backend's datagrams back to the client, from the address
// the client sent to. It ends when the flow's socket is closed.
func (s *udpServer) replies(f *Flow[*udpFlow]) {
	uf := f.Value
	buf := make([]byte, s.r.opts.MaxDatagramSize)
	for {
		n, _, flags, _, err := uf.up.ReadMsgUDPAddrPort(buf, nil)
		switch {
		case unreachable(err):
			s.r.markDown(uf.b, "udp unreachable", err)
			continue
		case err != nil:
			return
		case flags&unix.MSG_TRUNC != 0:
			s.m.drop(dropTooBig)
			continue
		}
		s.flows.Touch(f)
		if _, _, err := uf.out.WriteMsgUDPAddrPort(buf[:n], uf.oob, uf.client); err != nil {
			s.m.drop(dropUpstream)
			continue
		}
		s.m.packetsOut.Inc()
		s.m.bytesOut.Add(float64(n))
	}
}

// batch is Linux's recvmmsg/sendmmsg buffers (mmsg_linux.go); unused here.
type batch struct{}
