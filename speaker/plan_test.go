package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
)

func TestPlan(t *testing.T) {
	seg := netip.MustParsePrefix("198.51.100.0/24")
	other := netip.MustParsePrefix("198.19.1.0/24")
	addr := netip.MustParseAddr("198.51.100.200")
	members := []Member{
		{Name: "node1", Ifaces: []Iface{{Name: "eth1", Prefixes: []netip.Prefix{seg}}}},
		{Name: "node2", Ifaces: []Iface{{Name: "eth1", Prefixes: []netip.Prefix{other}}}}, // another segment
		{Name: "node3", Ifaces: []Iface{{Name: "eth1", Prefixes: []netip.Prefix{seg}}, {Name: "eth2", Prefixes: []netip.Prefix{seg}}}},
	}
	target := Target{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node1": nil, "node2": nil, "node3": nil}}

	t.Run("only nodes on the address's segment compete", func(t *testing.T) {
		got := Plan([]Target{target}, members)
		if len(got) != 1 || got[0].Node == "node2" {
			t.Fatalf("plan %+v: node2 has no interface in %s", got, seg)
		}
	})
	t.Run("the owner answers on every interface in the subnet", func(t *testing.T) {
		got := Plan([]Target{target}, members[2:])
		want := []Ownership{{Addr: addr, Service: "default/web", Node: "node3", Ifaces: []string{"eth1", "eth2"}}}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		ann := Announcements(got, "node3")
		wantAnn := []l2.Announcement{{Addr: addr, Iface: "eth1"}, {Addr: addr, Iface: "eth2"}}
		if diff := cmp.Diff(wantAnn, ann, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("announcements (-want +got):\n%s", diff)
		}
	})
	t.Run("allowed interfaces", func(t *testing.T) {
		only := Target{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node3": {"eth2"}}}
		got := Plan([]Target{only}, members)
		if len(got) != 1 || !cmp.Equal(got[0].Ifaces, []string{"eth2"}) {
			t.Errorf("plan %+v, want node3 on eth2 only", got)
		}
	})
	t.Run("no live candidate, no owner", func(t *testing.T) {
		if got := Plan([]Target{target}, members[1:2]); len(got) != 0 {
			t.Errorf("plan %+v, want none", got)
		}
	})
	t.Run("same inputs in any order, same owner", func(t *testing.T) {
		a := Plan([]Target{target}, members)
		b := Plan([]Target{target}, []Member{members[2], members[1], members[0]})
		if a[0].Node != b[0].Node {
			t.Errorf("owner %s vs %s", a[0].Node, b[0].Node)
		}
	})
}

// Balanced targets: one owner per address (Services sharing it
// included), the owners spread over the nodes, the plan sorted as the
// targets; Hash targets keep their first-ranked node.
func TestPlanBalanced(t *testing.T) {
	seg := netip.MustParsePrefix("198.51.100.0/24")
	var live []Member
	nodes := map[string][]string{}
	for _, n := range nodeNames(3) {
		live = append(live, Member{Name: n, Ifaces: []Iface{{Name: "eth1", Prefixes: []netip.Prefix{seg}}}})
		nodes[n] = nil
	}
	var targets []Target
	for i := range 6 {
		targets = append(targets, Target{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)}), Service: fmt.Sprintf("default/web%d", i), Nodes: nodes, Balanced: true})
	}
	shared := Target{Addr: targets[0].Addr, Service: "default/zz-shared", Nodes: nodes, Balanced: true}
	hashed := Target{Addr: netip.MustParseAddr("198.51.100.250"), Service: "default/hash", Nodes: nodes}
	targets = append(targets, shared, hashed)
	slices.SortFunc(targets, compareTargets)

	got := Plan(targets, live)
	cands := map[netip.Addr][]string{}
	for _, tg := range targets {
		if tg.Balanced {
			cands[tg.Addr] = nodeNames(3)
		}
	}
	owners := Spread(cands)
	var want []Ownership
	for _, tg := range targets {
		owner := owners[tg.Addr]
		if !tg.Balanced {
			owner = members.Owner(tg.Addr, nodeNames(3))
		}
		want = append(want, Ownership{Addr: tg.Addr, Service: tg.Service, Node: owner, Ifaces: []string{"eth1"}})
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	load := map[string]int{}
	for addr, o := range owners {
		if addr != hashed.Addr {
			load[o]++
		}
	}
	if diff := cmp.Diff(map[string]int{"node1": 2, "node2": 2, "node3": 2}, load); diff != "" {
		t.Errorf("six addresses on three nodes (-want +got):\n%s", diff)
	}
}

func TestIfaceMetaRoundTrip(t *testing.T) {
	in := []Iface{{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24"), netip.MustParsePrefix("2001:db8:100::11/64")}}}
	b, err := EncodeIfaces(in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, DecodeIfaces(b), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := DecodeIfaces([]byte("garbage")); got != nil {
		t.Errorf("garbage decoded to %v", got)
	}
}
