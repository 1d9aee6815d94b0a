package speaker

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/speaker/bgp"
)

// stateV1 is how a speaker before state file version 2 decoded the file
// (its state struct, unchanged since): what an upgraded speaker finds on
// the node, and what a downgraded one reads the new file with.
type stateV1 struct {
	Targets []Target    `json:"targets"`
	Peers   []string    `json:"peers"`
	BGP     *BGPDesired `json:"bgp,omitempty"`
}

// formatState has targets of every kind: on all nodes, on one node, on
// none (nil and empty), on nodes with no interface (empty list) and with
// named ones, balanced, withheld, and equal maps that are not the same
// map.
func formatState() state {
	all := map[string][]string{"node1": nil, "node2": nil, "node3": nil}
	return state{
		Targets: []Target{
			{Addr: netip.MustParseAddr("198.51.100.10"), Service: "default/a", Nodes: all, Balanced: true},
			{Addr: netip.MustParseAddr("198.51.100.11"), Service: "default/b", Nodes: all},
			{Addr: netip.MustParseAddr("198.51.100.12"), Service: "default/c", Nodes: map[string][]string{"node1": nil, "node2": nil, "node3": nil}},
			{Addr: netip.MustParseAddr("198.51.100.13"), Service: "default/d", Nodes: map[string][]string{"node2": {"eth0", "eth1"}}},
			{Addr: netip.MustParseAddr("198.51.100.14"), Service: "default/e", Nodes: map[string][]string{"node2": {}}},
			{Addr: netip.MustParseAddr("198.51.100.15"), Service: "default/f", Nodes: map[string][]string{"node2": nil}, Withheld: "NoReadyEndpoints"},
			{Addr: netip.MustParseAddr("2001:db8::10"), Service: "other/g", Nodes: nil},
			{Addr: netip.MustParseAddr("2001:db8::11"), Service: "other/h", Nodes: map[string][]string{}},
		},
		Peers: []string{"node1", "node2", "node3"},
		BGP: &BGPDesired{
			Peers:   []bgp.Peer{{Name: "r1", Address: netip.MustParseAddr("192.0.2.1"), MyASN: 64513, PeerASN: 64512}},
			Secrets: map[string]string{"r1": "pier-system/md5/password"},
		},
	}
}

var stateOpts = cmp.Options{addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

// What is saved loads back alike, nil and empty told apart, and equal
// node maps are written once and loaded as one shared map.
func TestStateRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	want := formatState()
	mustDo(t, saveState(file, want))
	got, err := loadState(file)
	mustDo(t, err)
	if diff := cmp.Diff(want, got, stateOpts, cmp.AllowUnexported(state{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	raw, err := os.ReadFile(file)
	mustDo(t, err)
	var f struct {
		Version int
		Targets diskTargets
	}
	mustDo(t, json.Unmarshal(raw, &f))
	if f.Version != stateVersion || len(f.Targets.NodeSets) != 6 {
		t.Errorf("version %d with %d node sets, want %d with 6 (all, eth0+eth1, no interface, any interface, none, empty):\n%s",
			f.Version, len(f.Targets.NodeSets), stateVersion, raw)
	}
	if strings.Count(string(raw), `"node3"`) != 2 { // the set of all nodes, and the peers
		t.Errorf("the set of all nodes is not written once:\n%s", raw)
	}
	for _, i := range []int{1, 2} {
		if !sameMap(got.Targets[0].Nodes, got.Targets[i].Nodes) {
			t.Errorf("target %d loaded with its own map of all nodes", i)
		}
	}
}

// An upgraded speaker reads the file an older one wrote (version 1, each
// target with its own node map) and, restarted during an API outage,
// announces what it announced before.
func TestStateVersion1Read(t *testing.T) {
	var down atomic.Bool
	c := loopAPI(t, &down, []string{"203.0.113.10"}, "node1", "node2", "node3")
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	ctx := context.Background()
	n := newLoopNode(t, "node1", c, func() bool { return true }, file, nil, "node1", "node2")
	n.s.sync(ctx)
	want := announcedBy(n)
	if len(want.l2) == 0 || len(want.paths) == 0 {
		t.Fatalf("nothing to compare: %+v", want)
	}
	saved, err := loadState(file)
	mustDo(t, err)
	old, err := json.Marshal(stateV1(saved))
	mustDo(t, err)
	if !strings.Contains(string(old), `"targets":[{`) || !strings.Contains(string(old), `"nodes":{"node1":`) {
		t.Fatalf("not a version 1 file: %s", old)
	}
	mustDo(t, os.WriteFile(file, old, 0o600))

	down.Store(true)
	restarted := newLoopNode(t, "node1", c, func() bool { return false }, file, nil, "node1", "node2")
	restarted.s.restore()
	if len(restarted.s.targets) != len(saved.Targets) {
		t.Fatalf("%d targets from the version 1 file, want %d", len(restarted.s.targets), len(saved.Targets))
	}
	restarted.s.sync(ctx)
	if diff := cmp.Diff(want, announcedBy(restarted), announcedOpts...); diff != "" {
		t.Errorf("restarted from a version 1 file during the outage (-want +got):\n%s", diff)
	}
}

// A version 1 file as the speaker wrote it: its targets load, equal node
// maps shared.
func TestStateVersion1Literal(t *testing.T) {
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	mustDo(t, os.WriteFile(file, []byte(`{"targets":[`+
		`{"addr":"198.51.100.10","service":"default/a","nodes":{"node1":null,"node2":["eth0"]},"balanced":true},`+
		`{"addr":"198.51.100.11","service":"default/b","nodes":{"node1":null,"node2":["eth0"]},"withheld":"NoReadyEndpoints"},`+
		`{"addr":"198.51.100.12","service":"default/c","nodes":null}],`+
		`"peers":["node1","node2"],"bgp":{}}`), 0o600))
	got, err := loadState(file)
	mustDo(t, err)
	nodes := map[string][]string{"node1": nil, "node2": {"eth0"}}
	want := state{
		Targets: []Target{
			{Addr: netip.MustParseAddr("198.51.100.10"), Service: "default/a", Nodes: nodes, Balanced: true},
			{Addr: netip.MustParseAddr("198.51.100.11"), Service: "default/b", Nodes: nodes, Withheld: "NoReadyEndpoints"},
			{Addr: netip.MustParseAddr("198.51.100.12"), Service: "default/c"},
		},
		Peers: []string{"node1", "node2"},
		BGP:   &BGPDesired{},
	}
	if diff := cmp.Diff(want, got, stateOpts); diff != "" {
		t.Errorf("version 1 file (-want +got):\n%s", diff)
	}
	if !sameMap(got.Targets[0].Nodes, got.Targets[1].Nodes) {
		t.Error("equal node maps of a version 1 file not shared")
	}
}

// A downgraded speaker (it decodes with stateV1) fails to decode the
// version 2 file, on its targets, so that it starts from the API rather
// than announce targets without nodes.
func TestStateVersion2FailsOldReader(t *testing.T) {
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	mustDo(t, saveState(file, formatState()))
	raw, err := os.ReadFile(file)
	mustDo(t, err)
	var old stateV1
	err = json.Unmarshal(raw, &old)
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) || typeErr.Field != "targets" {
		t.Errorf("old reader: error %v, want a type error on targets", err)
	}
	// Even a state without targets fails it: the targets are an object.
	mustDo(t, saveState(file, state{Peers: []string{"node1"}}))
	raw, err = os.ReadFile(file)
	mustDo(t, err)
	if err := json.Unmarshal(raw, &old); !errors.As(err, &typeErr) {
		t.Errorf("old reader of a state without targets: error %v, want a type error\n%s", err, raw)
	}
}

// A file this speaker cannot read (a newer version, a node set that is
// not there) is an error naming the file, as a corrupt one is.
func TestStateFileRefused(t *testing.T) {
	for name, content := range map[string]string{
		"newer version":     `{"version":3,"targets":{"nodeSets":[],"list":[]}}`,
		"list in version 2": `{"version":2,"targets":[{"addr":"198.51.100.10","service":"a/b","nodes":{}}]}`,
		"set out of range":  `{"version":2,"targets":{"nodeSets":[{"node1":null}],"list":[{"addr":"198.51.100.10","service":"a/b","nodes":1}]}}`,
		"negative set":      `{"version":2,"targets":{"nodeSets":[{"node1":null}],"list":[{"addr":"198.51.100.10","service":"a/b","nodes":-1}]}}`,
		"map in version 2":  `{"version":2,"targets":{"nodeSets":[],"list":[{"addr":"198.51.100.10","service":"a/b","nodes":{"node1":null}}]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "speaker-state.json")
			mustDo(t, os.WriteFile(file, []byte(content), 0o600))
			st, err := loadState(file)
			if err == nil || !strings.Contains(err.Error(), file) {
				t.Errorf("loaded %+v, err %v; want an error naming %s", st, err, file)
			}
		})
	}
}
