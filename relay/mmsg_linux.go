package relay

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is the most datagrams one recvmmsg or sendmmsg moves.
const batchSize = 16

// mmsghdr is struct mmsghdr (x/sys/unix has no type for it).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batch is the buffers of one recvmmsg/sendmmsg, allocated once and reused
// so the datagram path allocates nothing.
type batch struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte // each off bytes of headroom, then the datagram
	oobs  [][]byte
	names []unix.RawSockaddrInet6 // large enough for sockaddr_in too
	off   int
}

func newBatch(off, size, oobLen int) *batch {
	b := &batch{
		msgs: make([]mmsghdr, batchSize), iovs: make([]unix.Iovec, batchSize),
		bufs: make([][]byte, batchSize), oobs: make([][]byte, batchSize),
		names: make([]unix.RawSockaddrInet6, batchSize), off: off,
	}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, off+size)
		if oobLen > 0 {
			b.oobs[i] = make([]byte, oobLen)
		}
	}
	return b
}

// recv fills the batch from fd without blocking: the datagram count, or
// an errno (EAGAIN when nothing is queued).
func (b *batch) recv(fd uintptr) (int, syscall.Errno) {
	for i := range b.msgs {
		buf := b.bufs[i][b.off:]
		b.iovs[i].Base = &buf[0]
		b.iovs[i].SetLen(len(buf))
		h := &b.msgs[i].hdr
		*h = unix.Msghdr{Iov: &b.iovs[i], Iovlen: 1}
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		if oob := b.oobs[i]; oob != nil {
			h.Control = &oob[0]
			h.SetControllen(len(oob))
		}
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])),
			uintptr(len(b.msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(n), 0
		case unix.EINTR: // the Go runtime's preemption signal
			continue
		}
		return 0, errno
	}
}

// truncated reports whether message i was cut to the buffer's size.
func (b *batch) truncated(i int) bool { return b.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 }

// oob is message i's received control messages.
func (b *batch) oob(i int) []byte {
	if b.oobs[i] == nil {
		return nil
	}
	return b.oobs[i][:b.msgs[i].hdr.Controllen]
}

// from is message i's source address.
func (b *batch) from(i int) netip.AddrPort {
	return sockaddrAddrPort(&b.names[i])
}

// sockaddrAddrPort converts a sockaddr_in or sockaddr_in6 without
// allocating (but for a link-local IPv6 zone).
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	a := netip.AddrFrom16(sa.Addr)
	if sa.Scope_id != 0 {
		a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
	}
	return netip.AddrPortFrom(a, port)
}

// sockaddr is the raw sockaddr of a, for sendmmsg.
func sockaddr(a netip.AddrPort, sock6 bool) []byte {
	if !sock6 {
		var sa unix.RawSockaddrInet4
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], a.Port())
		sa.Addr = a.Addr().Unmap().As4()
		return unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
	}
	var sa unix.RawSockaddrInet6
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], a.Port())
	sa.Addr = a.Addr().As16()
	if z := a.Addr().Zone(); z != "" {
		id, _ := strconv.ParseUint(z, 10, 32)
		sa.Scope_id = uint32(id)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)
}

// prepareSend turns received messages into the first k of a send batch:
// the same buffers, each with its received length, to name with oob.
// Truncated messages are left out; dropped counts them.
func (b *batch) prepareSend(n int, name, oob []byte) (k, dropped int) {
	for i := range n {
		if b.truncated(i) {
			dropped++
			continue
		}
		l := b.msgs[i].len
		b.iovs[k].Base = &b.bufs[i][b.off]
		b.iovs[k].SetLen(int(l))
		h := &b.msgs[k].hdr
		*h = unix.Msghdr{Iov: &b.iovs[k], Iovlen: 1, Name: &name[0], Namelen: uint32(len(name))}
		if oob != nil {
			h.Control = &oob[0]
			h.SetControllen(len(oob))
		}
		b.msgs[k].len = l
		k++
	}
	return k, dropped
}

// send writes messages [from, to) of a prepared batch without blocking: the
// count sent, or an errno for the first one.
func (b *batch) send(fd uintptr, from, to int) (int, syscall.Errno) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[from])),
			uintptr(to-from), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(n), 0
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}
