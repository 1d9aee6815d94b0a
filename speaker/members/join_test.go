package members

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// TestJoinRoundIsBounded: a member missing 99 peers tries a few of them
// per round, not all: one reached member brings the whole group, and a
// group of N starting speakers joining each other at once made N² joins.
func TestJoinRoundIsBounded(t *testing.T) {
	m, err := New(Options{Name: "node1", BindAddr: netip.MustParseAddr("198.51.100.11"), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for i := 12; i <= 110; i++ {
		peers = append(peers, fmt.Sprintf("198.51.100.%d", i))
	}
	if err := m.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		tried []string
	)
	joinOne := func(addr string) error {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, addr)
		return errors.New("unreachable")
	}
	for round := range 3 {
		tried = nil
		if failing := m.join(joinOne, false); !failing {
			t.Errorf("round %d: reported a peer reached", round)
		}
		if len(tried) == 0 || len(tried) > 5 {
			t.Fatalf("round %d tried %d of %d missing peers, want a few (1 to 5)", round, len(tried), len(peers))
		}
		for _, a := range tried {
			if !slices.Contains(peers, netip.MustParseAddrPort(a).Addr().String()) {
				t.Errorf("round %d tried %s, not a peer", round, a)
			}
		}
		slices.Sort(tried)
		if len(slices.Compact(tried)) != len(tried) {
			t.Errorf("round %d tried a peer twice: %v", round, tried)
		}
	}
}

func TestPickJoins(t *testing.T) {
	few := []string{"a", "b"}
	if got := pickJoins(few, 3); !slices.Equal(got, few) {
		t.Errorf("pickJoins(%v, 3) = %v, want all", few, got)
	}
	many := []string{"a", "b", "c", "d", "e", "f"}
	seen := map[string]bool{}
	for range 200 {
		got := pickJoins(many, 3)
		if len(got) != 3 {
			t.Fatalf("picked %v, want 3", got)
		}
		for _, g := range got {
			seen[g] = true
		}
	}
	if len(seen) != len(many) { // 200 draws: missing one has odds of 6·(1/2)^200
		t.Errorf("200 rounds picked only %v of %v", seen, many)
	}
	if !slices.Equal(many, []string{"a", "b", "c", "d", "e", "f"}) {
		t.Errorf("pickJoins reordered its input: %v", many)
	}
}
