//go:build !linux

package relay

import "errors"

// RemoveKernelTables deletes the nftables tables whose names start with
// prefix (those of an earlier relay process). Linux only.
func RemoveKernelTables(prefix string) error { return nil }

func (r *Relay) openKernel() error {
	if r.opts.Kernel.Enabled {
		return errors.New("relay: the kernel data path needs Linux")
	}
	return nil
}
