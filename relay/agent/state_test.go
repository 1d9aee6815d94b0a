package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/rest"

	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/relay"
)

func sampleWant() map[Key]Want {
	bind := netip.IPv6Unspecified()
	return map[Key]Want{
		{Namespace: "voice", Name: "calls"}: {
			Config: Config{
				Listeners: []relay.Listener{
					{Name: "calls-tcp", Protocol: relay.TCP, Addr: netip.AddrPortFrom(bind, 8443)},
					{Name: "calls-udp", Protocol: relay.UDP, Addr: netip.AddrPortFrom(bind, 16384)},
				},
				RelaySettings: config.RelaySettings{KeyByAddressOnly: true, MaxFlows: 1000, UDPIdleTimeout: 90 * time.Second},
				Token:         relay.TokenOptions{Offset: 4, Length: 16},
			},
			Backends: []relay.Backend{
				{Name: "srv1", Addr: netip.MustParseAddr("198.51.100.21"), Ports: map[string]uint16{"calls-tcp": 9443, "calls-udp": 9384}},
				{Name: "srv2", Addr: netip.MustParseAddr("2001:db8::22"), ProxyProtocol: true, HealthPort: 9444},
			},
		},
		{Namespace: "voice", Name: "empty"}: {
			Config: Config{Listeners: []relay.Listener{{Name: "u", Protocol: relay.UDP, Addr: netip.AddrPortFrom(bind, 16385)}},
				RelaySettings: config.RelaySettings{Kernel: true}},
		},
	}
}

func newTestAgent(t *testing.T, dir string) (*Agent, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	a, err := New(Options{
		Config: &rest.Config{Host: "https://192.0.2.1:6443"}, NodeName: "node1", Namespace: "pier-system",
		StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, &logs
}

func TestStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, logs := newTestAgent(t, dir)
	want := sampleWant()
	a.save(want)
	info, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("state file mode %v, want 0600", perm)
	}
	b, logs2 := newTestAgent(t, dir)
	got := b.loadSaved()
	if diff := cmp.Diff(want, got, cmpAddr, cmpAP); diff != "" {
		t.Errorf("loaded state (-saved +loaded):\n%s", diff)
	}
	if !strings.Contains(logs2.String(), "serving 2 relays from saved state") {
		t.Errorf("no saved-state log line:\n%s", logs2)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want the state file only", len(entries))
	}
	// An unchanged set is not written again; an empty one is.
	if err := os.Remove(filepath.Join(dir, StateFile)); err != nil {
		t.Fatal(err)
	}
	a.save(sampleWant())
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
		t.Errorf("unchanged set written again (stat: %v)", err)
	}
	a.save(map[Key]Want{})
	if got := b.loadSaved(); got == nil || len(got) != 0 {
		t.Errorf("after saving an empty set, loaded %v, want an empty set", got)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("warnings while saving:\n%s", logs)
	}
}

func TestStateCorruptIgnored(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":     `{"relays":[{"namespace":"voice","name":"calls","want":{"Config":`,
		"not json":      "\x00\x01garbage",
		"unknown field": `{"relays":[],"extra":1}`,
		"no listeners":  `{"relays":[{"namespace":"voice","name":"calls","want":{"Config":{"Listeners":[]}}}]}`,
		"bad address":   `{"relays":[{"namespace":"voice","name":"calls","want":{"Config":{"Listeners":[{"Name":"a","Protocol":"TCP","Addr":"nowhere"}]}}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			a, logs := newTestAgent(t, dir)
			if got := a.loadSaved(); got != nil {
				t.Errorf("corrupt state loaded as %v, want nothing", got)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "ignoring saved state") {
				t.Errorf("no warning for a corrupt state file:\n%s", logs)
			}
		})
	}
}

// TestStateBeforeDataPath: a state file written before the data path was
// saved loads with the userspace path.
func TestStateBeforeDataPath(t *testing.T) {
	dir := t.TempDir()
	content := `{"relays":[{"namespace":"voice","name":"calls","want":{"Config":{"Listeners":[{"Name":"u","Protocol":"UDP","Addr":"[::]:16384"}],"MaxFlows":10},"Backends":null}}]}`
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAgent(t, dir)
	want := map[Key]Want{{Namespace: "voice", Name: "calls"}: {Config: Config{
		Listeners:     []relay.Listener{{Name: "u", Protocol: relay.UDP, Addr: netip.MustParseAddrPort("[::]:16384")}},
		RelaySettings: config.RelaySettings{MaxFlows: 10},
	}}}
	if diff := cmp.Diff(want, a.loadSaved(), cmpAddr, cmpAP); diff != "" {
		t.Errorf("loaded state (-want +got):\n%s", diff)
	}
}

func TestStateMissingAndOff(t *testing.T) {
	a, _ := newTestAgent(t, t.TempDir())
	if got := a.loadSaved(); got == nil || len(got) != 0 {
		t.Errorf("no state file: loaded %v, want an empty set", got)
	}
	off, _ := newTestAgent(t, "")
	if got := off.loadSaved(); got != nil {
		t.Errorf("no state dir: loaded %v, want nothing", got)
	}
	off.save(sampleWant()) // writes nothing, fails nothing
}

func TestPrepareStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pier-relay")
	owner := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	if err := PrepareStateDir(dir, owner); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir() || info.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want a 0700 directory", info.Mode())
	}
	if err := PrepareStateDir(dir, owner); err != nil {
		t.Errorf("again: %v", err)
	}
	for _, bad := range []string{"", "65532", "a:b", "-1:0", "65532:"} {
		if err := PrepareStateDir(dir, bad); err == nil {
			t.Errorf("owner %q accepted", bad)
		}
	}
}

// A state dir that cannot be written (a regular file where the directory
// should be: this fails for root too) is said, with the file and the
// reason, and counted; the relays are still served.
func TestStateUnwritable(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a, logs := newTestAgent(t, blocker)
	a.save(sampleWant())
	file := filepath.Join(blocker, StateFile)
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, file) || !strings.Contains(out, "not a directory") {
		t.Errorf("want a warning naming %s and the reason:\n%s", file, out)
	}
	var m dto.Metric
	if err := a.metrics.stateWriteFailures.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("pier_relay_agent_state_write_failures_total = %v (%v), want 1", m.GetCounter().GetValue(), err)
	}
}

// TestStateConfigFormat: a Config is saved as earlier releases saved it
// (before it was built from config.Relay), so that a rollback, or an
// upgrade while the API server is unreachable, reads the other's file.
func TestStateConfigFormat(t *testing.T) {
	const earlier = `{"Listeners":[{"Name":"calls-tcp","Protocol":"TCP","Addr":"[::]:8443"},{"Name":"calls-udp","Protocol":"UDP","Addr":"[::]:16384"}],` +
		`"KeyByAddressOnly":true,"MaxFlows":1000,"MaxDatagramSize":0,"MaxTCPConns":0,"MaxTCPConnsPerSource":0,"ConnectTimeout":0,` +
		`"TCPIdleTimeout":0,"UDPIdleTimeout":90000000000,"DrainTimeout":0,"Kernel":false,"Token":{"Offset":4,"Length":16,"Timeout":0}}`
	c := sampleWant()[Key{Namespace: "voice", Name: "calls"}].Config
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(earlier, string(got)); diff != "" {
		t.Errorf("saved config (-earlier +now):\n%s", diff)
	}
	var back Config
	dec := json.NewDecoder(strings.NewReader(earlier))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("earlier saved config: %v", err)
	}
	if !back.Equal(c) {
		t.Errorf("earlier saved config read as %+v, want %+v", back, c)
	}
}

func TestStateFileWritesOnlyChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.json")
	f := stateFile{path: path}
	var wrote []bool
	for _, data := range []string{`{"a":1}`, `{"a":1}`, `{"a":2}`} {
		w, err := f.write([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		wrote = append(wrote, w)
	}
	if diff := cmp.Diff([]bool{true, false, true}, wrote); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != `{"a":2}` {
		t.Errorf("file holds %q, %v", got, err)
	}
	none := stateFile{}
	if w, err := none.write([]byte("x")); w || err != nil {
		t.Errorf("without a path: wrote %v, %v", w, err)
	}
}
