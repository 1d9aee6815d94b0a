package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
)

// TestIdleTCPConnsHoldNoPipe holds 50 connections through the relay, each
// having carried data both ways: a direction waiting for data holds no
// pipe. (io.Copy's splice held a pipe pair, two descriptors and a kernel
// pipe, per direction for as long as it waited: 200 descriptors here, six
// per connection instead of two.)
func TestIdleTCPConnsHoldNoPipe(t *testing.T) {
	r := startRelay(t, Options{Backends: []Backend{bufferEcho(t)}})
	before := fdKinds(os.Getpid())["pipe"]
	const n = 50
	for range n {
		c, br := tcpEcho(t, r)
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if got, err := br.ReadString('\n'); err != nil || got != "ping\n" {
			t.Fatalf("echo: %q, %v", got, err)
		}
	}
	// Pipes the relay keeps free for the next data: a few, not one a direction.
	if got := fdKinds(os.Getpid())["pipe"] - before; got > n/2 {
		t.Errorf("%d connections waiting for data hold %d pipe descriptors; want at most %d", n, got, n/2)
	}
}

// TestMoverWithoutPipes: when no pipe can be made (out of descriptors),
// a direction still moves its data, through a buffer.
func TestMoverWithoutPipes(t *testing.T) {
	pp := newPipePool()
	pp.make = func() (*pipe, error) { return nil, errors.New("EMFILE") }
	src, srcPeer := tcpPair(t)
	dst, dstPeer := tcpPair(t)
	m, err := newMover(pp, dst, src)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<20)
	rand.Read(want)
	go func() {
		srcPeer.Write(want)
		srcPeer.CloseWrite()
	}()
	go func() {
		for {
			if _, err := m.move(); err != nil {
				dst.CloseWrite()
				return
			}
		}
	}()
	got, err := io.ReadAll(dstPeer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("moved %d bytes, not the %d sent", len(got), len(want))
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}
