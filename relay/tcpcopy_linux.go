package relay

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxFreePipes bounds a TCP listener's free pipes. Only directions moving
// data hold one, so a few serve every connection.
const maxFreePipes = 16

// pipeSize is the pipe buffer asked for (the default pipe-max-size); a
// smaller one works too, with more system calls.
const pipeSize = 1 << 20

// spliceFlags: the socket is non-blocking already; the pipe must not block
// either, so a direction never waits while it holds a pipe's other end.
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

type pipe struct{ r, w, size int }

func (p *pipe) close() {
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	p := &pipe{r: fds[0], w: fds[1], size: 64 << 10}
	_, _ = unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize)
	if n, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0); err == nil && n > 0 {
		p.size = n
	}
	return p, nil
}

// pipePool is a listener's free pipes.
type pipePool struct {
	free chan *pipe
	make func() (*pipe, error) // newPipe; tests fail it
}

func newPipePool() *pipePool {
	return &pipePool{free: make(chan *pipe, maxFreePipes), make: newPipe}
}

// get returns a free or new pipe, or nil when none can be made (out of
// descriptors).
func (pp *pipePool) get() *pipe {
	select {
	case p := <-pp.free:
		return p
	default:
	}
	p, err := pp.make()
	if err != nil {
		return nil
	}
	return p
}

// put returns an empty pipe to the free list, or closes it.
func (pp *pipePool) put(p *pipe) {
	select {
	case pp.free <- p:
	default:
		p.close()
	}
}

func (pp *pipePool) closeAll() {
	for {
		select {
		case p := <-pp.free:
			p.close()
		default:
			return
		}
	}
}

// mover copies one direction of a TCP connection with splice, through a
// pipe taken from the listener's free pipes when the source has data and
// given back when it has none: a direction waiting for its source holds no
// pipe. (io.Copy between TCP connections splices too, but holds its pipe,
// two descriptors and a kernel pipe, for as long as it waits: with every
// connection idle, six descriptors a connection instead of two.) The
// system calls are io.Copy's: a splice into the pipe that finds nothing
// is what sends a direction to wait.
type mover struct {
	pipes            *pipePool
	dstConn, srcConn *net.TCPConn
	dst, src         syscall.RawConn

	p      *pipe // held while the source has data
	in     int   // bytes the last fill moved into p
	ferr   error // the last fill's error
	noPipe bool  // fill found no pipe to take
	fill   func(fd uintptr) bool
}

func newMover(pipes *pipePool, dst, src *net.TCPConn) (*mover, error) {
	in, err := src.SyscallConn()
	if err != nil {
		return nil, err
	}
	out, err := dst.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mover{pipes: pipes, dstConn: dst, srcConn: src, dst: out, src: in}
	m.fill = m.fillFrom
	return m, nil
}

// fillFrom splices what the source socket fd has into the pipe, taking one
// if needed. With nothing to read it gives the pipe back and returns false:
// RawConn.Read then waits until the socket is readable and calls it again.
func (m *mover) fillFrom(fd uintptr) bool {
	if m.p == nil {
		if m.p = m.pipes.get(); m.p == nil {
			m.noPipe = true
			return true
		}
	}
	for {
		n, err := unix.Splice(int(fd), nil, m.p.w, nil, m.p.size, spliceFlags)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			m.release(true)
			return false
		}
		m.in, m.ferr = int(n), err
		return true
	}
}

// move waits until the source has data, has ended or failed (or its read
// deadline passes), then moves what one splice took, at most a pipe's
// size, to the destination. It returns io.EOF once the source half-closed.
func (m *mover) move() (int64, error) {
	m.noPipe = false
	if err := m.src.Read(m.fill); err != nil {
		m.release(true)
		return 0, err
	}
	switch {
	case m.noPipe:
		return m.copyBuffered()
	case m.ferr != nil:
		m.release(true)
		return 0, m.ferr
	case m.in == 0:
		m.release(true)
		return 0, io.EOF
	}
	n, err := m.drain(m.p, m.in)
	if err != nil {
		m.release(false)
	}
	return int64(n), err
}

// release gives the pipe back when it is empty, else closes it.
func (m *mover) release(empty bool) {
	switch {
	case m.p == nil:
	case empty:
		m.pipes.put(m.p)
	default:
		m.p.close()
	}
	m.p = nil
}

// drain splices the k bytes in p to the destination, waiting while its
// socket buffer is full.
func (m *mover) drain(p *pipe, k int) (int, error) {
	done := 0
	var serr error
	write := func(fd uintptr) bool {
		for done < k {
			n, err := unix.Splice(p.r, nil, int(fd), nil, k-done, spliceFlags)
			switch err {
			case nil:
				done += int(n)
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				serr = err
				return true
			}
		}
		return true
	}
	if err := m.dst.Write(write); err != nil {
		return done, err
	}
	return done, serr
}

// copyBuffered moves the waiting data through a buffer, when no pipe can
// be made.
func (m *mover) copyBuffered() (int64, error) {
	buf := make([]byte, 32<<10)
	n, err := m.srcConn.Read(buf)
	if n > 0 {
		if _, werr := m.dstConn.Write(buf[:n]); werr != nil {
			return int64(n), werr
		}
	}
	return int64(n), err
}
