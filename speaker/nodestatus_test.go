package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/internal/configstatus"
	"github.com/pier-lb/pier/speaker/bgp"
)

func TestBGPAnnouncements(t *testing.T) {
	a, b := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::10")
	sources := []BGPSource{
		{Addr: a, Service: "apps/web", Paths: []bgp.Path{{Peers: []string{"r2"}}, {Peers: []string{"r1", "r2", "r6", "waiting"}}}},
		{Addr: b, Service: "apps/web", Paths: []bgp.Path{{Peers: []string{"r1", "r6", "both"}}}},
		{Addr: netip.MustParseAddr("203.0.113.11"), Service: "apps/api", Paths: []bgp.Path{{Peers: []string{"r1", "both"}}}},
		// Withheld: listed with why when none of the Service's addresses
		// is announced, left out when one is.
		{Addr: netip.MustParseAddr("203.0.113.12"), Service: "apps/idle", Paths: []bgp.Path{{Peers: []string{"r1"}}},
			Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints},
		{Addr: netip.MustParseAddr("203.0.113.13"), Service: "apps/web", Paths: []bgp.Path{{Peers: []string{"r1"}}},
			Withheld: v1alpha1.NotAnnouncedNoReadyEndpoints},
	}
	v4, v6 := netip.MustParseAddr("192.0.2.254"), netip.MustParseAddr("2001:db8::254")
	peers := []bgp.Peer{
		{Name: "r1", Address: v4}, {Name: "r2", Address: v4}, // IPv4 only
		{Name: "r6", Address: v6}, // IPv6 only
		{Name: "both", Address: v4, Families: []bgp.Family{bgp.IPv4Unicast, bgp.IPv6Unicast}}, // no IPv6 next hop: IPv4 only
	}
	want := []v1alpha1.BGPServiceAnnouncement{
		{Service: "apps/api", Addresses: []string{"203.0.113.11"}, Peers: []string{"both", "r1"}},
		{Service: "apps/idle", Addresses: []string{"203.0.113.12"}, Peers: []string{"r1"}, NotAnnounced: v1alpha1.NotAnnouncedNoReadyEndpoints},
		{Service: "apps/web", Addresses: []string{"2001:db8::10", "203.0.113.10"}, Peers: []string{"r1", "r2", "r6"}},
	}
	if diff := cmp.Diff(want, BGPAnnouncements(sources, peers)); diff != "" {
		t.Errorf("BGPAnnouncements (-want +got):\n%s", diff)
	}
	peers[3].NextHop6 = netip.MustParseAddr("2001:db8::1")
	want[2].Peers = []string{"both", "r1", "r2", "r6"}
	if diff := cmp.Diff(want, BGPAnnouncements(sources, peers)); diff != "" {
		t.Errorf("with an IPv6 next hop for both (-want +got):\n%s", diff)
	}
}

func TestBGPAnnouncementObjects(t *testing.T) {
	if got := BGPAnnouncementObjects("node1", nil); len(got) != 0 {
		t.Errorf("nothing announced: %d objects, want none", len(got))
	}
	all := manyAnnouncements(2*AnnouncementsPerObject + 1)
	got := BGPAnnouncementObjects("node1", all)
	counts := map[string]int32{}
	var joined []v1alpha1.BGPServiceAnnouncement
	for _, name := range []string{"node1", "node1.part2", "node1.part3"} {
		counts[name] = got[name].ServiceCount
		joined = append(joined, got[name].Services...)
		if got[name].Node != "node1" || int(got[name].ServiceCount) != len(got[name].Services) {
			t.Errorf("%s: node %q, count %d of %d", name, got[name].Node, got[name].ServiceCount, len(got[name].Services))
		}
	}
	if diff := cmp.Diff(map[string]int32{"node1": 1000, "node1.part2": 1000, "node1.part3": 1}, counts); diff != "" || len(got) != 3 {
		t.Errorf("objects: %d, counts (-want +got):\n%s", len(got), diff)
	}
	if diff := cmp.Diff(all, joined); diff != "" {
		t.Errorf("the parts together (-want +got):\n%s", diff)
	}
}

func manyAnnouncements(n int) []v1alpha1.BGPServiceAnnouncement {
	out := make([]v1alpha1.BGPServiceAnnouncement, n)
	for i := range out {
		out[i] = v1alpha1.BGPServiceAnnouncement{Service: fmt.Sprintf("apps/svc-%05d", i),
			Addresses: []string{benchAddr(i).String()}, Peers: []string{"r1", "r2"}}
	}
	return out
}

// ipv4Peers are IPv4 sessions named names.
func ipv4Peers(names ...string) []bgp.Peer {
	out := make([]bgp.Peer, len(names))
	for i, n := range names {
		out[i] = bgp.Peer{Name: n, Address: netip.MustParseAddr("192.0.2.254")}
	}
	return out
}

func manySources(n int, peers ...string) []BGPSource {
	out := make([]BGPSource, n)
	for i := range out {
		out[i] = BGPSource{Addr: benchAddr(i), Service: fmt.Sprintf("apps/svc-%05d", i), Paths: []bgp.Path{{Peers: peers}}}
	}
	return out
}

// runAnnouncementWriter runs w until the test ends.
func runAnnouncementWriter(t testing.TB, w *AnnouncementWriter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// listAnnouncements is node's objects by name: their Service counts.
func listAnnouncements(c client.Client, node string) (map[string]int32, []v1alpha1.BGPAnnouncementStatus, error) {
	var l v1alpha1.BGPAnnouncementStatusList
	if err := c.List(context.Background(), &l, client.InNamespace("pier-system"), client.MatchingLabels{v1alpha1.LabelNode: node}); err != nil {
		return nil, nil, err
	}
	out := map[string]int32{}
	for _, o := range l.Items {
		out[o.Name] = o.Status.ServiceCount
	}
	return out, l.Items, nil
}

// The writer against a real API server: one object per 1,000 Services,
// the spare ones deleted when the node announces fewer, none when it
// announces nothing, and nothing written when nothing changed.
func TestAnnouncementWriterAgainstAPIServer(t *testing.T) {
	e := newAPIEnv(t, cluster.Options{})
	w, err := NewAnnouncementWriter(AnnouncementOptions{Client: e.c, Namespace: "pier-system", Node: "node1", Every: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runAnnouncementWriter(t, w)
	for _, step := range []struct {
		n    int
		want map[string]int32
	}{
		{2500, map[string]int32{"node1": 1000, "node1.part2": 1000, "node1.part3": 500}},
		{10, map[string]int32{"node1": 10}},
		{0, map[string]int32{}},
	} {
		w.Set(manySources(step.n, "r1"), ipv4Peers("r1"))
		lab.Poll(t, fmt.Sprintf("%d Services written", step.n), 20*time.Millisecond, 30*time.Second, func() error {
			got, _, err := listAnnouncements(e.c, "node1")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(step.want, got); diff != "" {
				return fmt.Errorf("objects (-want +got):\n%s", diff)
			}
			return nil
		})
	}
	w.Set(manySources(3, "r1", "r2"), ipv4Peers("r1", "r2"))
	var rv string
	lab.Poll(t, "peers written", 20*time.Millisecond, 30*time.Second, func() error {
		_, items, err := listAnnouncements(e.c, "node1")
		if err != nil || len(items) != 1 {
			return fmt.Errorf("%d objects, %v", len(items), err)
		}
		want := v1alpha1.BGPServiceAnnouncement{Service: "apps/svc-00002", Addresses: []string{"198.18.0.2"}, Peers: []string{"r1", "r2"}}
		if got := items[0].Status.Services; len(got) != 3 || !cmp.Equal(got[2], want) {
			return fmt.Errorf("services %+v", got)
		}
		rv = items[0].ResourceVersion
		return nil
	})
	w.Set(manySources(3, "r2", "r1"), ipv4Peers("r2", "r1")) // the same, in another order
	if err := w.write(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, items, err := listAnnouncements(e.c, "node1"); err != nil || len(items) != 1 || items[0].ResourceVersion != rv {
		t.Errorf("unchanged announcements written again: %v", err)
	}
}

// statusSpeaker runs a speaker over a real API cache with both node status
// writers and a fake BGP announcer.
func statusSpeaker(t *testing.T, e *apiEnv, node string) {
	t.Helper()
	scheme, err := nodeScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := newAPICache(e.cl.Config, scheme, restMapper(), "pier-system", "pier-system", node)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := configstatus.New(configstatus.Options{Client: e.c, Namespace: "pier-system", Node: node,
		Component: v1alpha1.ComponentSpeaker, Every: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ann, err := NewAnnouncementWriter(AnnouncementOptions{Client: e.c, Namespace: "pier-system", Node: node, Every: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mem := NewFakeMembers(node)
	mem.Settle()
	var synced atomic.Bool
	log := slog.New(slog.DiscardHandler)
	sp, err := New(Options{
		NodeName: node, Namespace: "pier-system", PasswordNamespace: "pier-system", GossipAddr: netip.MustParseAddr("192.0.2.1"),
		Reader: c, Synced: synced.Load, Members: mem, L2: &FakeL2{}, BGP: &FakeBGP{}, Logger: log,
		ConfigStatus: cfg, Announcements: ann,
		Interfaces: func() ([]Iface, error) { return nil, nil },
		StateFile:  filepath.Join(t.TempDir(), "speaker-state.json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{
		c.Start, sp.Run, cfg.Run, ann.Run,
		func(ctx context.Context) error { return sp.watchAPI(ctx, c, &synced, log, nil) },
	} {
		wg.Go(func() { _ = run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// A BGPPeer with a bad field (created as if the webhook were off: the
// CRD's schema lets it through, config.Parse refuses it) shows in the
// node's ConfigurationStatus with object and field, and clears when fixed;
// the node's BGPAnnouncementStatus lists the Service and its peers.
func TestNodeStatusAgainstAPIServer(t *testing.T) {
	e := newAPIEnv(t, cluster.Options{})
	ctx := context.Background()
	e.create(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}})
	e.create(t, &v1alpha1.IPAddressPool{ObjectMeta: metaNS("bgp", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}}})
	e.create(t, &v1alpha1.BGPPeer{ObjectMeta: metaNS("r1", "pier-system"),
		Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "192.0.2.254"}})
	e.create(t, &v1alpha1.BGPAdvertisement{ObjectMeta: metaNS("bgp", "pier-system"), Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}})
	e.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 443}}}}
	e.create(t, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}
	if err := e.c.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	statusSpeaker(t, e, "node1")

	configIs := func(want v1alpha1.ConfigurationStatusStatus) func() error {
		return func() error {
			var obj v1alpha1.ConfigurationStatus
			if err := e.c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "speaker-node1"}, &obj); err != nil {
				return err
			}
			got := obj.Status
			got.LastChange = nil
			if diff := cmp.Diff(want, got); diff != "" {
				return fmt.Errorf("configuration status (-want +got):\n%s", diff)
			}
			return nil
		}
	}
	announced := func(peers ...string) func() error {
		return func() error {
			_, items, err := listAnnouncements(e.c, "node1")
			if err != nil || len(items) != 1 {
				return fmt.Errorf("%d objects, %v", len(items), err)
			}
			want := []v1alpha1.BGPServiceAnnouncement{{Service: "apps/web", Addresses: []string{"203.0.113.10"}, Peers: peers}}
			if diff := cmp.Diff(want, items[0].Status.Services); diff != "" {
				return fmt.Errorf("announcements (-want +got):\n%s", diff)
			}
			return nil
		}
	}
	valid := v1alpha1.ConfigurationStatusStatus{Node: "node1", Component: "speaker", Valid: true}
	lab.Poll(t, "configuration valid", 50*time.Millisecond, time.Minute, configIs(valid))
	lab.Poll(t, "apps/web announced to r1", 50*time.Millisecond, time.Minute, announced("r1"))

	bad := &v1alpha1.BGPPeer{ObjectMeta: metaNS("r2", "pier-system"),
		Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "192.0.2.300"}}
	e.create(t, bad)
	lab.Poll(t, "the bad peer in the status", 50*time.Millisecond, time.Minute, func() error {
		var obj v1alpha1.ConfigurationStatus
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "speaker-node1"}, &obj); err != nil {
			return err
		}
		st := obj.Status
		if st.Valid || len(st.Problems) != 1 {
			return fmt.Errorf("status %+v", st)
		}
		p := st.Problems[0]
		if p.Kind != "BGPPeer" || p.Namespace != "pier-system" || p.Name != "r2" || p.Field != "spec.peerAddress" || p.Message == "" {
			return fmt.Errorf("problem %+v, want BGPPeer pier-system/r2 at spec.peerAddress", p)
		}
		if st.Summary != configstatus.Describe(p) || st.LastChange == nil {
			return fmt.Errorf("summary %q, last change %v", st.Summary, st.LastChange)
		}
		return nil
	})
	lab.Poll(t, "apps/web still announced to r1", 50*time.Millisecond, time.Minute, announced("r1"))

	if err := e.c.Get(ctx, client.ObjectKeyFromObject(bad), bad); err != nil {
		t.Fatal(err)
	}
	bad.Spec.PeerAddress = "192.0.2.253"
	if err := e.c.Update(ctx, bad); err != nil {
		t.Fatal(err)
	}
	lab.Poll(t, "configuration valid again", 50*time.Millisecond, time.Minute, configIs(valid))
	lab.Poll(t, "apps/web announced to r1 and r2", 50*time.Millisecond, time.Minute, announced("r1", "r2"))

	if err := e.c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	lab.Poll(t, "no announcements left", 50*time.Millisecond, time.Minute, func() error {
		got, _, err := listAnnouncements(e.c, "node1")
		if err == nil && len(got) > 0 {
			err = errors.New("objects left: " + fmt.Sprint(got))
		}
		return err
	})
}
