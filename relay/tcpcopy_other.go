//go:build !linux

package relay

import (
	"io"
	"net"
)

type pipePool struct{}

func newPipePool() *pipePool   { return &pipePool{} }
func (pp *pipePool) closeAll() {}

// mover copies one direction of a TCP connection with io.Copy.
type mover struct{ dst, src *net.TCPConn }

func newMover(_ *pipePool, dst, src *net.TCPConn) (*mover, error) {
	return &mover{dst: dst, src: src}, nil
}

// move moves up to copyChunk bytes; it returns io.EOF once the source
// half-closed.
func (m *mover) move() (int64, error) {
	n, err := io.Copy(m.dst, &io.LimitedReader{R: m.src, N: copyChunk})
	if err == nil && n < copyChunk {
		err = io.EOF
	}
	return n, err
}
