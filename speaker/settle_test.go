package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
)

// fakeSegmentSpeaker is node1's speaker over fakes, with node1 and peers
// on one segment (eth1, 198.51.100.0/24), not reading the API.
func fakeSegmentSpeaker(t *testing.T, mem *FakeMembers, peers ...string) (*Speaker, *FakeL2) {
	t.Helper()
	seg := []Iface{{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}
	for _, n := range peers {
		meta, err := EncodeIfaces(seg)
		if err != nil {
			t.Fatal(err)
		}
		mem.SetMetaOf(n, meta)
	}
	ann := &FakeL2{}
	s, err := New(Options{
		NodeName: "node1", Namespace: "pier-system",
		Reader: fake.NewClientBuilder().Build(), Synced: func() bool { return false },
		Members: mem, L2: ann,
		Interfaces: func() ([]Iface, error) { return seg, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, ann
}

// A starting speaker sees itself alone until its view settles: it announces
// nothing then, not every address. Once settled it announces what it owns;
// when a member joins, it re-announces what it keeps, for the clients that
// heard the newcomer.
func TestSpeakerWaitsForSettledView(t *testing.T) {
	mem := NewFakeMembers("node1")
	s, ann := fakeSegmentSpeaker(t, mem, "node2", "node3", "node4")
	all := map[string][]string{"node1": nil, "node2": nil, "node3": nil, "node4": nil}
	var addrs []netip.Addr
	for i := range 50 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)})
		addrs = append(addrs, a)
		s.targets = append(s.targets, Target{Addr: a, Service: fmt.Sprintf("voice/s%d", i), Nodes: all})
	}
	owned := func(live ...string) []l2.Announcement {
		var out []l2.Announcement
		for _, a := range addrs {
			if members.Owner(a, live) == "node1" {
				out = append(out, l2.Announcement{Addr: a, Iface: "eth1"})
			}
		}
		return out
	}
	ctx := context.Background()
	addrEq := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

	steps := []struct {
		name            string
		do              func()
		want            []l2.Announcement
		wantReannounced int
	}{
		{"starting, alone in its view", func() {}, nil, 0},
		{"peers heard of, view not settled", func() { mem.SetLive("node1", "node2", "node3") }, nil, 0},
		{"settled", mem.Settle, owned("node1", "node2", "node3"), 0},
		{"node4 joins", func() { mem.SetLive("node1", "node2", "node3", "node4") }, owned("node1", "node2", "node3", "node4"), 1},
		{"nothing changed", func() {}, owned("node1", "node2", "node3", "node4"), 1},
		{"node4 leaves", func() { mem.SetLive("node1", "node2", "node3") }, owned("node1", "node2", "node3"), 1},
	}
	for _, st := range steps {
		st.do()
		s.sync(ctx)
		sets := ann.Sets()
		got := sets[len(sets)-1]
		if diff := cmp.Diff(st.want, got, addrEq); diff != "" {
			t.Errorf("%s: announced (-want +got):\n%s", st.name, diff)
		}
		if n := ann.Reannounced(); n != st.wantReannounced {
			t.Errorf("%s: re-announced %d times, want %d", st.name, n, st.wantReannounced)
		}
	}
	if n := len(owned("node1", "node2", "node3")); n == 0 || n == len(addrs) {
		t.Fatalf("node1 owns %d of %d addresses among three nodes: the test proves nothing", n, len(addrs))
	}
}
