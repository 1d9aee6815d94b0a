package bfd

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindToDevice returns a socket Control function that binds the socket to
// iface (SO_BINDTODEVICE), or nil for no interface.
func bindToDevice(iface string) func(network, address string, c syscall.RawConn) error {
	if iface == "" {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
		})
		return errors.Join(err, serr)
	}
}
