package benchenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, heap := filepath.Join(dir, "cpu"), filepath.Join(dir, "heap")
	t.Setenv("PIER_TEST_CPU", cpu)
	t.Setenv("PIER_TEST_HEAP", heap)
	CPUProfile(t, "PIER_TEST_CPU")()
	HeapProfile(t, "PIER_TEST_HEAP")
	for _, p := range []string{cpu, heap} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: no profile written (%v)", filepath.Base(p), err)
		}
	}

	t.Setenv("PIER_TEST_CPU", "")
	CPUProfile(t, "PIER_TEST_CPU")()
	HeapProfile(t, "PIER_TEST_UNSET")
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files after unset variables, want the 2 from before", len(entries))
	}
}
