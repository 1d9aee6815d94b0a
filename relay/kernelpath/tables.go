package kernelpath

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
)

// Tables is one process's share of the kernel data path tables of its
// network namespace: a random tag names every table it writes, so that a
// new process can tell an earlier one's tables apart from its own, the
// anchor table (Anchor) is written once per prefix, and a sequence numbers
// the tables of the process's paths. Create one per process; its methods
// are safe for concurrent use.
type Tables struct {
	tag string

	mu       sync.Mutex
	anchored map[string]bool // prefixes whose anchor table this process wrote
	seq      uint64
}

// NewTables returns a process's Tables with a fresh random tag.
func NewTables() *Tables {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return &Tables{tag: hex.EncodeToString(b), anchored: map[string]bool{}}
}

// Open writes prefix's anchor table unless this process already has, then
// returns a path whose table is prefix_tag_n (o.Table is ignored). The path
// writes nothing until Apply.
func (t *Tables) Open(prefix string, o Options) (*Path, error) {
	name, err := t.next(prefix)
	if err != nil {
		return nil, err
	}
	o.Table = name
	return New(o)
}

// next anchors prefix once and names the next table.
func (t *Tables) next(prefix string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.anchored[prefix] {
		if err := Anchor(fmt.Sprintf("%s_%s_anchor", prefix, t.tag)); err != nil {
			return "", err
		}
		t.anchored[prefix] = true
	}
	t.seq++
	return fmt.Sprintf("%s_%s_%d", prefix, t.tag, t.seq), nil
}

// RemoveStale deletes the tables named with prefix that this process did
// not write: those an earlier process left behind (a SIGKILLed relay cannot
// delete its own). Call it once this process's paths have written their
// tables: deleting a namespace's last NAT chain unhooks NAT there until the
// next one is written, and the kernel's flows would lose their translation
// meanwhile. Flows already translated keep going otherwise: their NAT lives
// in conntrack, not in the table.
func (t *Tables) RemoveStale(prefix string) error {
	return RemoveTables(prefix+"_", prefix+"_"+t.tag+"_")
}
