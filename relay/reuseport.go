package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpSockets is how many listener sockets a UDP listener opens: n, else
// GOMAXPROCS; one where SO_REUSEPORT does not spread datagrams (not Linux).
func udpSockets(n int) int {
	if runtime.GOOS != "linux" {
		return 1
	}
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return max(n, 1)
}

// listenUDP opens n sockets on addr. With more than one they form an
// SO_REUSEPORT group: the kernel hashes each datagram's addresses and ports
// to one socket, so a flow always reaches the same socket, and each socket
// has its own reader. Port 0 is resolved by the first socket.
func listenUDP(addr netip.AddrPort, n int) ([]*net.UDPConn, error) {
	n = udpSockets(n)
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("SO_REUSEPORT: %w", serr)
			}
			return nil
		}
	}
	var conns []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), network("udp", addr), addr.String())
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, err
		}
		c := pc.(*net.UDPConn)
		conns = append(conns, c)
		addr = netip.AddrPortFrom(addr.Addr(), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	return conns, nil
}
