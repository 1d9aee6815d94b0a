package vip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"

	"github.com/pier-lb/pier/internal/daemon"
)

// readState returns the addresses recorded in path; a missing file is an
// empty record.
func readState(path string) ([]netip.Addr, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	var addrs []netip.Addr
	if err := json.Unmarshal(b, &addrs); err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	if slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !a.IsValid() }) {
		return nil, fmt.Errorf("read state %s: an empty address", path) // JSON "" decodes to the zero Addr
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs), nil
}

// writeState records addrs in path atomically: a reader (or a restarted
// speaker) sees the old list or the new one, never a torn file.
func writeState(path string, addrs []netip.Addr) error {
	if addrs == nil {
		addrs = []netip.Addr{}
	}
	b, err := json.Marshal(addrs)
	if err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := daemon.WriteFileAtomic(path, append(b, '\n'), 0o755); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
