package speaker

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/speaker/bgp"
)

// A peer whose Secret is missing is left out (never started without its
// password); its paths still name it.
func TestBGPPlanWaitsForPassword(t *testing.T) {
	in := Inputs{Config: bgpConfig(t, v1alpha1.BGPAdvertisementSpec{}), Services: []corev1.Service{lbService("web", "203.0.113.10")},
		Nodes: []corev1.Node{node("node2", map[string]string{"rack": "b"})}}
	got := BGPPlan(in, "node2", nil)
	if len(got.Peers) != 1 || got.Peers[0].Name != "r2" {
		t.Errorf("peers %+v, want only r2 (r1 waits for its Secret)", got.Peers)
	}
	if !strings.Contains(got.Waiting["r1"], `Secret pier-bgp-passwords/md5 has no key "password"`) {
		t.Errorf("waiting = %q", got.Waiting)
	}
	if diff := cmp.Diff([]string{"r1", "r2"}, got.Paths[0].Peers); diff != "" {
		t.Errorf("path peers (-want +got):\n%s", diff)
	}
}

// The saved plan holds no password; after a restart the peer that needs
// one waits until the Secret is read again, the others announce at once.
func TestSavedBGPPlanHasNoPassword(t *testing.T) {
	in := Inputs{Config: bgpConfig(t, v1alpha1.BGPAdvertisementSpec{}), Services: []corev1.Service{lbService("web", "203.0.113.10")},
		Nodes: []corev1.Node{node("node2", map[string]string{"rack": "b"})}}
	plan := BGPPlan(in, "node2", map[string]string{"pier-bgp-passwords/md5/password": "s3cret"})
	if len(plan.Peers) != 2 {
		t.Fatalf("peers %+v, want r1 and r2", plan.Peers)
	}
	file := filepath.Join(t.TempDir(), "state.json")
	disk := plan.forDisk()
	if err := saveState(file, state{BGP: &disk}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cret") {
		t.Fatalf("password written to disk: %s", raw)
	}
	if plan.Peers[0].Password != "s3cret" {
		t.Error("forDisk changed the plan in memory")
	}
	st, err := loadState(file)
	if err != nil {
		t.Fatal(err)
	}
	restored := st.BGP.withPasswords(nil)
	if len(restored.Peers) != 1 || restored.Peers[0].Name != "r2" || restored.Waiting["r1"] == "" {
		t.Errorf("restored without passwords: peers %+v waiting %q", restored.Peers, restored.Waiting)
	}
	if diff := cmp.Diff(plan.Paths, restored.Paths, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("restored paths (-want +got):\n%s", diff)
	}
	again := st.BGP.withPasswords(map[string]string{"pier-bgp-passwords/md5/password": "s3cret"})
	if len(again.Peers) != 2 || again.Peers[0].Password != "s3cret" || len(again.Waiting) != 0 {
		t.Errorf("restored with the password: peers %+v waiting %q", again.Peers, again.Waiting)
	}
}

func TestBGPSessionStatuses(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	plan := BGPDesired{
		Peers:   []bgp.Peer{{Name: "frr", Address: netip.MustParseAddr("198.51.100.1")}, {Name: "new", Address: netip.MustParseAddr("198.51.100.3")}},
		Waiting: map[string]string{"bird": "no password"},
	}
	sessions := []bgp.PeerStatus{{Name: "frr", State: "Established", Since: since, PrefixesSent: 7, PrefixesReceived: 1 << 40, LastError: "old", BFDState: "Up"}}
	got := BGPSessionStatuses("node1", plan, sessions)
	want := map[string]v1alpha1.BGPSessionStatusStatus{
		"frr-node1": {Node: "node1", Peer: "frr", PeerAddress: "198.51.100.1", State: "Established",
			Since: &metav1.Time{Time: since.Truncate(time.Second)}, PrefixesSent: 7, PrefixesReceived: 1<<31 - 1, LastError: "old", BFDState: "Up"},
		"new-node1":  {Node: "node1", Peer: "new", PeerAddress: "198.51.100.3", State: "Idle"},
		"bird-node1": {Node: "node1", Peer: "bird", State: "Idle", LastError: "no password"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	long := BGPSessionStatusName(strings.Repeat("p", 60), "node1")
	if len(long) > 63 || long == BGPSessionStatusName(strings.Repeat("p", 61), "node1") {
		t.Errorf("long names not short and unique: %q", long)
	}
}

// TestBGPPeerLinkLocal: a link-local peer reaches the announcer with its
// interface as the zone of its address and source address.
func TestBGPPeerLinkLocal(t *testing.T) {
	in := config.BGPPeer{Name: "tor", Address: netip.MustParseAddr("fe80::1"), Interface: "eth1",
		SourceAddress: netip.MustParseAddr("fe80::2")}
	if got := bgpPeer(in); got.Address.String() != "fe80::1%eth1" || got.SourceAddress.String() != "fe80::2%eth1" {
		t.Errorf("address %s, source %s; want fe80::1%%eth1 from fe80::2%%eth1", got.Address, got.SourceAddress)
	}
	in = config.BGPPeer{Name: "r", Address: netip.MustParseAddr("2001:db8::1")}
	if got := bgpPeer(in); got.Address.String() != "2001:db8::1" || got.SourceAddress.IsValid() {
		t.Errorf("global address %s, source %s; want 2001:db8::1 and none", got.Address, got.SourceAddress)
	}
}

// TestBGPPeerBFD: a BGPPeer's bfd block reaches the announcer's peer.
func TestBGPPeerBFD(t *testing.T) {
	in := config.BGPPeer{Name: "frr", Address: netip.MustParseAddr("198.51.100.1"), BFD: &config.BFD{
		ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 200 * time.Millisecond, DetectMultiplier: 4,
		Passive: true, Multihop: true, MinimumTTL: 250}}
	want := &bgp.BFD{DesiredMinTx: 200 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 4,
		Passive: true, Multihop: true, MinTTL: 250}
	if diff := cmp.Diff(want, bgpPeer(in).BFD); diff != "" {
		t.Errorf("BFD (-want +got):\n%s", diff)
	}
	in.BFD = nil
	if got := bgpPeer(in).BFD; got != nil {
		t.Errorf("no bfd block: got %+v", got)
	}
}

// The writer creates and updates this node's objects and deletes those of
// peers that no longer apply to it; other nodes' objects stay.
func TestWriteBGPStatus(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	stale := func(name, node string) *v1alpha1.BGPSessionStatus {
		return &v1alpha1.BGPSessionStatus{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "pier-system",
			Labels: map[string]string{v1alpha1.LabelNode: node, v1alpha1.LabelBGPPeer: "gone"}}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.BGPSessionStatus{}).
		WithObjects(stale("gone-node1", "node1"), stale("gone-node2", "node2")).Build()
	fb := &FakeBGP{}
	fb.SetStatus([]bgp.PeerStatus{{Name: "frr", State: "Active"}})
	s := &Speaker{opts: Options{NodeName: "node1", Namespace: "pier-system", Writer: c, BGP: fb}}
	s.bgpView = BGPDesired{Peers: []bgp.Peer{{Name: "frr", Address: netip.MustParseAddr("198.51.100.1")}}}
	ctx := context.Background()
	check := func(state string, sent int32) {
		t.Helper()
		if err := s.writeBGPStatus(ctx); err != nil {
			t.Fatal(err)
		}
		var list v1alpha1.BGPSessionStatusList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range list.Items {
			names = append(names, o.Name)
			if o.Name == "frr-node1" && (o.Status.State != state || o.Status.PrefixesSent != sent || o.Labels[v1alpha1.LabelBGPPeer] != "frr") {
				t.Errorf("frr-node1 = %+v %v, want state %s, %d sent", o.Status, o.Labels, state, sent)
			}
		}
		if diff := cmp.Diff([]string{"frr-node1", "gone-node2"}, names); diff != "" {
			t.Errorf("objects (-want +got):\n%s", diff)
		}
	}
	check("Active", 0)
	fb.SetStatus([]bgp.PeerStatus{{Name: "frr", State: "Established", PrefixesSent: 3}})
	check("Established", 3)
}
