package agent

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/pier-lb/pier/internal/daemon"
)

// StateFile is the name of the file the agent keeps in Options.StateDir.
const StateFile = "relays.json"

// savedRelay is one Relay of the saved desired set.
type savedRelay struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Want      Want   `json:"want"`
}

// savedState is what the agent keeps on the node so that, restarted while
// the API server is unreachable, it serves what it served before.
type savedState struct {
	Relays []savedRelay `json:"relays"`
}

// encodeState is the saved form of want, sorted by key so that an unchanged
// set encodes alike.
func encodeState(want map[Key]Want) ([]byte, error) {
	st := savedState{Relays: []savedRelay{}}
	for k, w := range want {
		st.Relays = append(st.Relays, savedRelay{Namespace: k.Namespace, Name: k.Name, Want: w})
	}
	slices.SortFunc(st.Relays, func(a, b savedRelay) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return json.Marshal(st)
}

// loadState reads the saved desired set; no file is an empty set, not an
// error.
func loadState(path string) (map[Key]Want, error) {
	var st savedState
	if err := readStrict(path, &st); err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	out := make(map[Key]Want, len(st.Relays))
	for _, r := range st.Relays {
		if r.Namespace == "" || r.Name == "" || len(r.Want.Config.Listeners) == 0 {
			return nil, fmt.Errorf("read state %s: relay %q/%q without a name or listeners", path, r.Namespace, r.Name)
		}
		out[Key{Namespace: r.Namespace, Name: r.Name}] = r.Want
	}
	return out, nil
}

// readStrict decodes the JSON file at path into v, refusing fields it does
// not know (a file from a newer agent is not half read); a missing file
// leaves v as it is.
func readStrict(path string, v any) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// stateFile is a file of the state dir, written whole and only when its
// content differs from what the last successful write put there.
type stateFile struct {
	path    string // "" without a state dir: nothing is written
	written []byte
}

// write writes data unless the file holds it already, and tells whether
// it wrote.
func (f *stateFile) write(data []byte) (bool, error) {
	if f.path == "" || bytes.Equal(data, f.written) {
		return false, nil
	}
	if err := writeState(f.path, data); err != nil {
		return false, err
	}
	f.written = data
	return true, nil
}

// writeState writes data atomically: a crash leaves the old file or the
// new one.
func writeState(path string, data []byte) error {
	if err := daemon.WriteFileAtomic(path, data, 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// PrepareStateDir creates dir (mode 0700) and gives it to owner ("uid:gid"):
// an init container running as root prepares a hostPath state dir for a
// relay that runs without root.
func PrepareStateDir(dir, owner string) error {
	uidS, gidS, ok := strings.Cut(owner, ":")
	uid, uerr := strconv.ParseUint(uidS, 10, 31)
	gid, gerr := strconv.ParseUint(gidS, 10, 31)
	if !ok || uerr != nil || gerr != nil {
		return fmt.Errorf("state dir owner %q: want uid:gid", owner)
	}
	if dir == "" {
		return errors.New("prepare state dir: no --state-dir")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prepare state dir %s: %w", dir, err)
	}
	// The init container has CAP_CHOWN but not CAP_FOWNER: once the
	// directory belongs to the relay's user (a restart finds it so) its
	// mode can no longer change. So the mode first, and only if it differs.
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("prepare state dir %s: %w", dir, err)
	}
	if info.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("prepare state dir %s: %w", dir, err)
		}
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return fmt.Errorf("prepare state dir %s: %w", dir, err)
	}
	return nil
}
