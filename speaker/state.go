package speaker

import (
	"encoding/json"
	"fmt"
	"os"

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
	if err := json.Unmarshal(data, &st); err != nil {
		return state{}, fmt.Errorf("read state %s: %w", path, err)
	}
	return st, nil
}

// saveState writes atomically: a crash leaves the old file or the new one.
func saveState(path string, st state) error {
	if path == "" {
		return nil
	}
	data, err := json.Marshal(st)
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
// once per StateEvery: at 20,000 Services the file is megabytes, and a
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
