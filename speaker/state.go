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
