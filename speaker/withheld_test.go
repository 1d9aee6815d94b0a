package speaker

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// A withheld target gets an owner, which announces nothing for it.
func TestPlanWithheld(t *testing.T) {
	seg := netip.MustParsePrefix("198.51.100.0/24")
	live := []Member{{Name: "node1", Ifaces: []Iface{{Name: "eth1", Prefixes: []netip.Prefix{seg}}}}}
	addr := netip.MustParseAddr("198.51.100.200")
	held := Target{Addr: addr, Service: "default/web", Nodes: map[string][]string{"node1": nil}, Balanced: true,
		Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints}
	got := Plan([]Target{held}, live)
	want := []Ownership{{Addr: addr, Service: "default/web", Node: "node1", Ifaces: []string{"eth1"}, Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints}}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if ann := Announcements(got, "node1"); len(ann) != 0 {
		t.Errorf("announcements %v, want none", ann)
	}
}

func TestWantStatusWithheld(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")
	own := func(addr netip.Addr, svc, why string) Ownership {
		return Ownership{Addr: addr, Service: "default/" + svc, Node: "node1", Ifaces: []string{"eth1"}, Withheld: why}
	}
	const no = v1alpha1.NotAnnouncedNoReadyEndpoints
	for _, tc := range []struct {
		name string
		mine []Ownership
		want map[string]v1alpha1.ServiceL2StatusStatus
	}{
		{"withheld: the addresses and why, no interface", []Ownership{own(v4, "web", no), own(v6, "web", no)},
			map[string]v1alpha1.ServiceL2StatusStatus{"default/web": {Node: "node1", ServiceNamespace: "default", ServiceName: "web",
				Addresses: []string{"198.51.100.200", "2001:db8:100::200"}, NotAnnounced: no}}},
		{"one address announced, one withheld: the announced one", []Ownership{own(v4, "web", ""), own(v6, "web", no)},
			map[string]v1alpha1.ServiceL2StatusStatus{"default/web": {Node: "node1", ServiceNamespace: "default", ServiceName: "web",
				Addresses: []string{"198.51.100.200"}, Interfaces: []string{"eth1"}}}},
		{"two Services", []Ownership{own(v4, "web", ""), own(v6, "db", no)},
			map[string]v1alpha1.ServiceL2StatusStatus{
				"default/web": {Node: "node1", ServiceNamespace: "default", ServiceName: "web", Addresses: []string{"198.51.100.200"}, Interfaces: []string{"eth1"}},
				"default/db":  {Node: "node1", ServiceNamespace: "default", ServiceName: "db", Addresses: []string{"2001:db8:100::200"}, NotAnnounced: no}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine := map[netip.Addr]Ownership{}
			for _, o := range tc.mine {
				mine[o.Addr] = o
			}
			if diff := cmp.Diff(tc.want, wantStatus("node1", mine, nil)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A Service that loses its last ready endpoint: its owner stops
// announcing it, with no takeover, and its ServiceL2Status says why; once
// announced again it is a takeover (an event) and the reason is gone.
func TestWithheldStatusWritten(t *testing.T) {
	scheme := runtime.NewScheme()
	mustDo(t, v1alpha1.AddToScheme(scheme))
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.ServiceL2Status{}).Build()
	s, err := New(Options{NodeName: "node1", Namespace: "pier-system", Reader: c, Writer: c, Synced: func() bool { return true },
		Members: NewFakeMembers("node1"), L2: &FakeL2{}})
	mustDo(t, err)
	addr := netip.MustParseAddr("198.51.100.200")
	o := Ownership{Addr: addr, Service: "default/web", Node: "node1", Ifaces: []string{"eth1"}}
	held := o
	held.Withheld = v1alpha1.NotAnnouncedNoReadyEndpoints
	w := &l2Writer{s: s}
	ctx := context.Background()
	status := func() v1alpha1.ServiceL2StatusStatus {
		var obj v1alpha1.ServiceL2Status
		mustDo(t, c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: statusName("default/web", "node1")}, &obj))
		return obj.Status
	}
	for i, step := range []struct {
		plan  Ownership
		taken int
		want  v1alpha1.ServiceL2StatusStatus
	}{
		{o, 1, v1alpha1.ServiceL2StatusStatus{Node: "node1", ServiceNamespace: "default", ServiceName: "web",
			Addresses: []string{"198.51.100.200"}, Interfaces: []string{"eth1"}}},
		{held, 0, v1alpha1.ServiceL2StatusStatus{Node: "node1", ServiceNamespace: "default", ServiceName: "web",
			Addresses: []string{"198.51.100.200"}, NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints}},
		{o, 1, v1alpha1.ServiceL2StatusStatus{Node: "node1", ServiceNamespace: "default", ServiceName: "web",
			Addresses: []string{"198.51.100.200"}, Interfaces: []string{"eth1"}}},
	} {
		s.reportOwnership([]Ownership{step.plan})
		mine, taken, changed := s.report.take()
		if len(taken) != step.taken {
			t.Errorf("step %d: %d takeovers, want %d", i, len(taken), step.taken)
		}
		mustDo(t, w.write(ctx, mine, changed))
		if diff := cmp.Diff(step.want, status()); diff != "" {
			t.Errorf("step %d: status (-want +got):\n%s", i, diff)
		}
	}
}
