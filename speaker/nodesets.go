package speaker

import (
	"maps"
	"slices"
	"strings"
)

// nodeSets interns the allowed-node maps of targets (Target.Nodes): most
// Services of a pool are allowed on the same nodes (every eligible node
// for externalTrafficPolicy Cluster), so at 20,000 Services on 100 nodes
// one map per target would hold two million entries where a few distinct
// maps do. An interned map is shared and never changed (nobody writes a
// Target's Nodes after serviceTargets made it).
//
// The table keeps maps that no target uses any more (a Service whose
// ready nodes moved); when it has grown to twice what was live at its
// last pruning, it is rebuilt from the live targets.
type nodeSets struct {
	byKey map[string]map[string][]string
	limit int
}

func newNodeSets() *nodeSets {
	return &nodeSets{byKey: map[string]map[string][]string{}, limit: minNodeSets}
}

// minNodeSets is the least size at which the table is pruned.
const minNodeSets = 256

// intern returns the table's map equal to nodes (reflect.DeepEqual: a nil
// interface list stays nil), adding nodes when there is none. A nil
// table interns nothing.
func (t *nodeSets) intern(nodes map[string][]string) map[string][]string {
	if t == nil || len(nodes) == 0 {
		return nodes
	}
	key := nodeSetKey(nodes)
	if have, ok := t.byKey[key]; ok {
		return have
	}
	t.byKey[key] = nodes
	return nodes
}

// prune rebuilds the table from the targets in use once it has grown
// past its limit.
func (t *nodeSets) prune(live map[string][]Target) {
	if t == nil || len(t.byKey) < t.limit {
		return
	}
	t.byKey = map[string]map[string][]string{}
	for _, ts := range live {
		for _, x := range ts {
			if len(x.Nodes) > 0 {
				t.byKey[nodeSetKey(x.Nodes)] = x.Nodes
			}
		}
	}
	t.limit = max(minNodeSets, 2*len(t.byKey))
}

// nodeSetKey encodes a map of node names to interfaces, telling a nil
// list (any interface) from an empty one.
func nodeSetKey(nodes map[string][]string) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		b.WriteString(n)
		ifaces := nodes[n]
		if ifaces == nil {
			b.WriteString("\x00")
			continue
		}
		b.WriteString("\x01")
		for _, i := range ifaces {
			b.WriteString(i)
			b.WriteString("\x02")
		}
		b.WriteString("\x00")
	}
	return b.String()
}
