package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadState: any relays.json loads or gives an error naming the file,
// never a panic; what loads holds only named relays with listeners and
// encodes back to a file that loads to the same encoding.
func FuzzLoadState(f *testing.F) {
	good, err := encodeState(sampleWant())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"relays":[]}`))
	f.Add([]byte(`{"relays":[{"namespace":"voice","name":"calls","want":{"Config":{"Listeners":[{"Name":"u","Protocol":"UDP","Addr":"[::]:16384"}],"MaxFlows":10},"Backends":null}}]}`))
	f.Add([]byte(`{"relays":[{"namespace":"voice","name":"calls","want":{"Config":`))
	f.Add([]byte(`{"relays":[],"extra":1}`))
	f.Add([]byte("\x00\x01garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), StateFile)
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		want, err := loadState(file)
		if err != nil {
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name %s", err, file)
			}
			return
		}
		for k, w := range want {
			if k.Namespace == "" || k.Name == "" || len(w.Config.Listeners) == 0 {
				t.Fatalf("loaded relay %v without a name or listeners", k)
			}
		}
		enc, err := encodeState(want)
		if err != nil {
			t.Fatalf("encoding what loaded: %v", err)
		}
		if err := os.WriteFile(file, enc, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := loadState(file)
		if err != nil {
			t.Fatalf("loading what was encoded: %v\n%s", err, enc)
		}
		enc2, err := encodeState(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the state (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}
