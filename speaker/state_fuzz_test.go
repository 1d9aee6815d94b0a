package speaker

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadState: any state file content loads or gives an error naming
// the file, never a panic; what loads saves and loads back alike.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"targets":[{"addr":"198.51.100.10","service":"default/web","nodes":{"node1":null}}],"peers":["192.0.2.2"],"bgp":{"Peers":null,"Paths":null}}`))
	f.Add([]byte(`{"targets":[],"peers":[]}`))
	f.Add([]byte(`{"version":2,"targets":{"nodeSets":[{"node1":null,"node2":["eth0"]},null,{}],"list":[{"addr":"198.51.100.10","service":"default/web","nodes":0,"balanced":true},{"addr":"198.51.100.11","service":"default/b","nodes":1},{"addr":"198.51.100.12","service":"default/c","nodes":2}]},"peers":["192.0.2.2"]}`))
	f.Add([]byte(`{"version":2,"targets":{"nodeSets":[],"list":[{"addr":"198.51.100.10","nodes":3}]}}`))
	f.Add([]byte(`{"targets":[{"addr":"nowhere"}]}`))
	f.Add([]byte(`{"targets":{"a":1}}`))
	f.Add([]byte("\x00\x01garbage"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "speaker-state.json")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(file)
		if err != nil {
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name %s", err, file)
			}
			return
		}
		if err := saveState(file, st); err != nil {
			t.Fatalf("saving what loaded: %v", err)
		}
		again, err := loadState(file)
		if err != nil {
			t.Fatalf("loading what was saved: %v", err)
		}
		a, errA := json.Marshal(st)
		b, errB := json.Marshal(again)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the state:\n%s\n%s", a, b)
		}
	})
}
