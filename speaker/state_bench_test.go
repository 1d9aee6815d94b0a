package speaker

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkStateFile: the speaker's state file holding the targets of
// scaleInputs (20,000 Services on 100 nodes by default, half
// externalTrafficPolicy Local) and the nodes as peers: its size
// (file-MiB), the time to marshal and write it (save) and to read and
// decode it (load). The BGP plan is left out (the pool is L2).
func BenchmarkStateFile(b *testing.B) {
	in, n := scaleInputs(b)
	st := state{Targets: Targets(in)}
	for _, nd := range in.Nodes {
		st.Peers = append(st.Peers, nd.Name)
	}
	file := filepath.Join(b.TempDir(), "speaker-state.json")
	if err := saveState(file, st); err != nil {
		b.Fatal(err)
	}
	info, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	size := float64(info.Size()) / (1 << 20)
	b.Run("save", func(b *testing.B) {
		for b.Loop() {
			if err := saveState(file, st); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(size, "file-MiB")
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			got, err := loadState(file)
			if err != nil {
				b.Fatal(err)
			}
			if len(got.Targets) != n {
				b.Fatalf("%d targets loaded, want %d", len(got.Targets), n)
			}
		}
		b.ReportMetric(size, "file-MiB")
	})
}
