//go:build !linux

package kernelpath

import (
	"errors"
	"net/netip"
)

var errNotLinux = errors.New("kernelpath: needs Linux")

// Path is the kernel data path; Linux only.
type Path struct{}

// New fails: the kernel data path needs Linux.
func New(Options) (*Path, error) { return nil, errNotLinux }

func (p *Path) Apply([]Listener) error                 { return errNotLinux }
func (p *Path) Forget(netip.AddrPort) (int, error)     { return 0, errNotLinux }
func (p *Path) Flows() (map[uint16]int, error)         { return nil, errNotLinux }
func (p *Path) Counters() (map[string]Counters, error) { return nil, errNotLinux }
func (p *Path) Close() error                           { return nil }
func (p *Path) Stop() error                            { return nil }

// Anchor does nothing off Linux.
func Anchor(string) error { return nil }

// RemoveTables does nothing off Linux.
func RemoveTables(prefix, keep string) error { return nil }
