package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

// A speaker that shuts down leaves the group, and its view of the members
// is torn down: for a moment it may see itself alone. A pass that acted on
// that view would claim every address (seen in e2e/l2mode TestNoFalseClaims:
// a stopping node answered ARP for addresses its peers owned). Once its
// context ends, no pass changes what the node announces.
func TestShutdownClaimsNothing(t *testing.T) {
	mem := NewFakeMembers("node1", "node2", "node3")
	s, ann := fakeSegmentSpeaker(t, mem, "node2", "node3")
	mem.Settle()
	all := map[string][]string{"node1": nil, "node2": nil, "node3": nil}
	for i := range 30 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)})
		s.targets = append(s.targets, Target{Addr: a, Service: fmt.Sprintf("voice/s%d", i), Nodes: all})
	}
	s.sync(context.Background())
	before := len(ann.Sets()[0])
	if before == 0 || before == len(s.targets) {
		t.Fatalf("node1 owns %d of %d addresses with three members; the test needs some, not all", before, len(s.targets))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mem.SetLive("node1") // the others vanish from the leaving node's view
	s.sync(ctx)
	for range 20 { // Run, with the change and the end both pending
		mem.SetLive("node1")
		if err := s.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, set := range ann.Sets() {
		if len(set) > before {
			t.Fatalf("set %d after the end: %d addresses announced, %d before", i, len(set), before)
		}
	}
}
