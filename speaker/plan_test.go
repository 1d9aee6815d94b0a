package speaker

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/speaker/l2"
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
