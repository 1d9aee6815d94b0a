package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	for _, data := range []string{"first\n", "second\n"} {
		if err := WriteFileAtomic(path, []byte(data), 0o700); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v), want the state file only", entries, err)
	}
	if err := WriteFileAtomic(filepath.Join(path, "x"), nil, 0o700); err == nil {
		t.Error("writing under a file: no error")
	}
}

// A failed write names the file and the reason, never the temporary file:
// its random name would make each failure of the same cause look new to a
// caller that says each distinct error once.
func TestWriteFileAtomicErrorIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.Mkdir(path, 0o700); err != nil { // a directory where the file should be
		t.Fatal(err)
	}
	first := WriteFileAtomic(path, []byte("x"), 0o700)
	second := WriteFileAtomic(path, []byte("x"), 0o700)
	if first == nil || second == nil {
		t.Fatalf("writing over a directory: %v, %v; want errors", first, second)
	}
	if first.Error() != second.Error() {
		t.Errorf("two failures of the same cause read differently:\n%v\n%v", first, second)
	}
	if msg := first.Error(); !strings.Contains(msg, path) || strings.Contains(msg, ".state.json.") {
		t.Errorf("error %q: want %s named and no temporary file", msg, path)
	}
	if !errors.Is(first, fs.ErrExist) {
		t.Errorf("error %v does not wrap the reason (fs.ErrExist)", first)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v), want no temporary file left", entries, err)
	}
}
