package relay

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestTCPRelaysLargeTransfers sends 8 MiB through the relay while reading
// the echo: what arrives is what was sent, in order, and a half-close still
// ends the echo.
func TestTCPRelaysLargeTransfers(t *testing.T) {
	r := startRelay(t, Options{Backends: []Backend{bufferEcho(t)}})
	c, br := tcpEcho(t, r)
	want := make([]byte, 8<<20)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes differs (%d bytes back)", len(want), len(got))
	}
}

// bufferEcho is a TCP backend that says hello, then echoes through a
// buffer: unlike io.Copy between connections it holds no pipe, so the
// test process's pipes are the relay's.
func bufferEcho(t *testing.T) Backend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				if _, err := io.WriteString(c, "hello\n"); err != nil {
					return
				}
				for {
					n, err := c.Read(buf)
					if err != nil {
						c.(*net.TCPConn).CloseWrite()
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return Backend{Name: "echo", Addr: netip.MustParseAddr("127.0.0.1"),
		Ports: map[string]uint16{"tcp": uint16(ln.Addr().(*net.TCPAddr).Port)}}
}

// tcpEcho connects through r to bufferEcho and reads its hello.
func tcpEcho(t *testing.T, r *running) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.Addr("tcp").String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("read name: %v", err)
	}
	return c, br
}
