package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// read relays the datagrams arriving on one listener socket, up to
// batchSize per recvmmsg.
func (s *udpServer) read(ctx context.Context, conn *net.UDPConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("relay: read %s: %w", s.l.Name, err)
	}
	oobLen := 0
	if s.wildcard {
		oobLen = 128
	}
	b := newBatch(headroom, s.r.opts.MaxDatagramSize, oobLen)
	var n int
	var errno syscall.Errno
	recv := func(fd uintptr) bool {
		n, errno = b.recv(fd)
		return errno != unix.EAGAIN
	}
	for {
		if err := rc.Read(recv); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: read %s: %w", s.l.Name, err)
		}
		if errno != 0 {
			continue
		}
		for i := range n {
			if b.truncated(i) {
				s.m.drop(dropTooBig)
				continue
			}
			dst := s.local.Addr()
			if s.wildcard {
				if d, ok := pktinfoDst(b.oob(i)); ok {
					dst = d
				}
			}
			s.forward(conn, b.from(i), netip.AddrPortFrom(dst, s.local.Port()), b.bufs[i], int(b.msgs[i].len))
		}
	}
}

// replyBatch takes a batch for a flow's replies from the free list: flows
// hold one only while they move datagrams, not while they wait, so a few
// serve every flow. (A sync.Pool is emptied by garbage collections and
// would allocate 32 KiB batches again after each.)
func (s *udpServer) replyBatch() *batch {
	select {
	case b := <-s.batches:
		return b
	default:
		return newBatch(0, s.r.opts.MaxDatagramSize, 0)
	}
}

// putBatch returns b to the free list, or leaves it to the collector when
// the list is full.
func (s *udpServer) putBatch(b *batch) {
	select {
	case s.batches <- b:
	default:
	}
}

// replies sends the backend's datagrams back to the client, from the address
// the client sent to, up to batchSize per recvmmsg and sendmmsg. It ends
// when the flow's socket is closed.
func (s *udpServer) replies(f *Flow[*udpFlow]) {
	uf := f.Value
	in, err := uf.up.SyscallConn()
	if err != nil {
		return
	}
	out, err := uf.out.SyscallConn()
	if err != nil {
		return
	}
	name := sockaddr(uf.client, s.local.Addr().Is6())
	var (
		b        *batch
		n, k, at int
		errno    syscall.Errno
	)
	recv := func(fd uintptr) bool {
		b = s.replyBatch()
		n, errno = b.recv(fd)
		if errno == unix.EAGAIN {
			s.putBatch(b)
			return false
		}
		return true
	}
	send := func(fd uintptr) bool {
		for at < k {
			sent, errno := b.send(fd, at, k)
			switch {
			case errno == unix.EAGAIN:
				return false
			case errno != 0:
				s.m.drop(dropUpstream)
				at++
				continue
			}
			bytes := 0
			for i := at; i < at+sent; i++ {
				bytes += int(b.msgs[i].len)
			}
			s.m.packetsOut.Add(float64(sent))
			s.m.bytesOut.Add(float64(bytes))
			at += sent
		}
		return true
	}
	for {
		if err := in.Read(recv); err != nil {
			return
		}
		if errno != 0 {
			s.putBatch(b)
			if !unreachable(errno) {
				return
			}
			s.r.markDown(uf.b, "udp unreachable", errno)
			continue
		}
		s.flows.Touch(f)
		var dropped int
		k, dropped = b.prepareSend(n, name, uf.oob)
		for range dropped {
			s.m.drop(dropTooBig)
		}
		at = 0
		if err := out.Write(send); err != nil {
			for range k - at {
				s.m.drop(dropUpstream)
			}
		}
		s.putBatch(b)
	}
}
