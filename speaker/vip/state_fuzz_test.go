package vip

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzReadState: any vip-state.json reads or gives an error naming the
// file, never a panic; what reads is valid addresses, sorted, without duplicates, and writes
// back to a file that reads the same.
func FuzzReadState(f *testing.F) {
	f.Add([]byte(`["198.51.100.10","2001:db8::10"]` + "\n"))
	f.Add([]byte(`["198.51.100.10","198.51.100.10","::ffff:198.51.100.10"]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[""]`))
	f.Add([]byte(`["nowhere"]`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "vip-state.json")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		addrs, err := readState(file)
		if err != nil {
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name %s", err, file)
			}
			return
		}
		if !slices.IsSortedFunc(addrs, netip.Addr.Compare) || len(slices.Compact(slices.Clone(addrs))) != len(addrs) {
			t.Fatalf("read %v: not sorted or duplicates", addrs)
		}
		for _, a := range addrs {
			if !a.IsValid() {
				t.Fatalf("read %v: holds an invalid address", addrs)
			}
		}
		if err := writeState(file, addrs); err != nil {
			t.Fatalf("writing what was read: %v", err)
		}
		again, err := readState(file)
		if err != nil || !slices.Equal(addrs, again) {
			t.Fatalf("round trip: %v, then %v (%v)", addrs, again, err)
		}
	})
}
