package speaker

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"

	"github.com/pier-lb/pier/internal/daemon"
)

// state is what the speaker keeps on the node so that it can announce after
// a restart while the API server is unreachable. The BGP plan is saved
// without passwords (BGPDesired.forDisk).
type state struct {
	Targets []Target    `json:"targets"`
	Peers   []string    `json:"peers"`
	BGP     *BGPDesired `json:"bgp,omitempty"`
}

// stateVersion is the format saveState writes.
//
// Version 1 (no "version" key) listed the targets, each with its
// allowed-node map: at 20,000 Services on 100 nodes, 14.6 MiB and half
// a second to write (BenchmarkStateFile). Version 2 writes each distinct map once ("nodeSets") and each
// target names its map by index, so that the file grows with the Services
// plus the distinct node sets, not Services times nodes.
//
// Version 2's "targets" is an object where version 1's is a list: a
// speaker that reads only version 1 (a downgrade) fails to decode the
// file, says so and starts from the API, instead of taking targets without
// nodes (which would withdraw every address during an API outage).
const stateVersion = 2

// stateFile is the file's outer shape; Targets is decoded by Version.
type stateFile struct {
	Version int             `json:"version,omitempty"`
	Targets json.RawMessage `json:"targets"`
	Peers   []string        `json:"peers"`
	BGP     *BGPDesired     `json:"bgp,omitempty"`
}

// diskTargets are the targets in version 2.
type diskTargets struct {
	NodeSets []map[string][]string `json:"nodeSets"`
	List     []diskTarget          `json:"list"`
}

// diskTarget is a Target whose "nodes" is an index in
// diskTargets.NodeSets: the shallower NodeSet hides Target.Nodes from
// encoding/json, and every other field of Target is saved as it is.
type diskTarget struct {
	Target
	NodeSet int `json:"nodes"`
}

func loadState(path string) (state, error) {
	var st state
	if path == "" {
		return st, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state %s: %w", path, err)
	}
	st, err = decodeState(data)
	if err != nil {
		return state{}, fmt.Errorf("read state %s: %w", path, err)
	}
	return st, nil
}

// decodeState reads either version. Targets read from version 1 share
// their equal node maps as version 2's do (see nodeSets).
func decodeState(data []byte) (state, error) {
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return state{}, err
	}
	st := state{Peers: f.Peers, BGP: f.BGP}
	switch f.Version {
	case 0, 1:
		if len(f.Targets) > 0 {
			if err := json.Unmarshal(f.Targets, &st.Targets); err != nil {
				return state{}, fmt.Errorf("version 1 targets: %w", err)
			}
		}
		sets := newNodeSets()
		for i := range st.Targets {
			st.Targets[i].Nodes = sets.intern(st.Targets[i].Nodes)
		}
	case 2:
		targets, err := decodeTargets(f.Targets)
		if err != nil {
			return state{}, fmt.Errorf("version 2 targets: %w", err)
		}
		st.Targets = targets
	default:
		return state{}, fmt.Errorf("version %d, this speaker reads up to %d", f.Version, stateVersion)
	}
	return st, nil
}

func decodeTargets(raw json.RawMessage) ([]Target, error) {
	var d diskTargets
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	var out []Target
	if d.List != nil {
		out = make([]Target, 0, len(d.List))
	}
	for _, x := range d.List {
		if x.NodeSet < 0 || x.NodeSet >= len(d.NodeSets) {
			return nil, fmt.Errorf("target %s of %s: node set %d of %d", x.Addr, x.Service, x.NodeSet, len(d.NodeSets))
		}
		x.Target.Nodes = d.NodeSets[x.NodeSet]
		out = append(out, x.Target)
	}
	return out, nil
}

// encodeState writes version 2.
func encodeState(st state) ([]byte, error) {
	var d diskTargets
	sets := setIndex{byMap: map[uintptr]int{}, byKey: map[string]int{}}
	if st.Targets != nil {
		d.List = make([]diskTarget, 0, len(st.Targets))
	}
	for _, x := range st.Targets {
		i := sets.index(&d, x.Nodes)
		d.List = append(d.List, diskTarget{Target: x, NodeSet: i})
	}
	targets, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return json.Marshal(stateFile{Version: stateVersion, Targets: targets, Peers: st.Peers, BGP: st.BGP})
}

// setIndex finds a node map's index in diskTargets.NodeSets: by the
// map itself first (targets share interned maps, so this is the common
// case and costs no key), then by its content. A nil map (no node) and
// an empty one are told apart.
type setIndex struct {
	byMap map[uintptr]int
	byKey map[string]int
}

func (s setIndex) index(d *diskTargets, nodes map[string][]string) int {
	ptr := reflect.ValueOf(nodes).Pointer()
	if i, ok := s.byMap[ptr]; ok {
		return i
	}
	key := "nil"
	if nodes != nil {
		key = "map " + nodeSetKey(nodes)
	}
	i, ok := s.byKey[key]
	if !ok {
		i = len(d.NodeSets)
		d.NodeSets = append(d.NodeSets, nodes)
		s.byKey[key] = i
	}
	s.byMap[ptr] = i
	return i
}

// saveState writes atomically: a crash leaves the old file or the new one.
func saveState(path string, st state) error {
	if path == "" {
		return nil
	}
	data, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := daemon.WriteFileAtomic(path, data, 0o755); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// restore starts from the saved state. A file that cannot be read is no
// reason to stop: the speaker starts from nothing and takes what the API
// says (or the first settled view), and says which file and why.
func (s *Speaker) restore() {
	st, err := loadState(s.opts.StateFile)
	if err != nil {
		s.log.Warn("state file unreadable, starting from the API", "file", s.opts.StateFile, "err", err)
		return
	}
	s.targets, s.peers, s.planValid = st.Targets, st.Peers, false
	s.gen++
	_ = s.opts.Members.SetPeers(st.Peers)
	if st.BGP != nil {
		s.setBGP(st.BGP.withPasswords(s.passwords))
	}
}

// saveDue writes the state the file does not hold yet (unsaved), at most
// once per StateEvery: at 20,000 Services the file is over a MiB, and a
// change of one Service should not write it all each time. A failed
// write stops nothing (the file only serves a restart during an API
// outage): it is counted every time, logged once per distinct error, and
// tried again at the next pass.
func (s *Speaker) saveDue() {
	if s.unsaved == nil || s.stateErr == "" && s.opts.Clock.Since(s.savedAt) < s.opts.StateEvery {
		return
	}
	s.saveNow()
}

// saveNow writes the unsaved state, if any, at once.
func (s *Speaker) saveNow() {
	if s.unsaved == nil {
		return
	}
	st := *s.unsaved
	if err := saveState(s.opts.StateFile, st); err != nil {
		s.opts.Metrics.stateWriteFailed()
		if msg := err.Error(); msg != s.stateErr {
			s.stateErr = msg
			s.log.Warn("cannot write the state file; announcing goes on, but a restart during an API outage would start from an older state",
				"file", s.opts.StateFile, "err", err)
		}
		return
	}
	if s.stateErr != "" {
		s.log.Info("state file written again", "file", s.opts.StateFile)
		s.stateErr = ""
	}
	s.saved, s.unsaved, s.savedAt = st, nil, s.opts.Clock.Now()
}
