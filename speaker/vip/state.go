package vip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
	if err := replaceFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

func replaceFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes the rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
