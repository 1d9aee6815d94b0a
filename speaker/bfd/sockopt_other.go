//go:build !linux

package bfd

import (
	"errors"
	"syscall"
)

// bindToDevice needs Linux's SO_BINDTODEVICE.
func bindToDevice(iface string) func(network, address string, c syscall.RawConn) error {
	if iface == "" {
		return nil
	}
	return func(_, _ string, _ syscall.RawConn) error {
		return errors.New("binding a bfd socket to an interface needs Linux")
	}
}
