package bgpmode

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// TestBFD runs pier-speaker with a BGPPeer that has a bfd block, towards
// FRR with `neighbor ... bfd`: BFD comes up, shows in BGPSessionStatus
// and the speaker's metrics, and a frozen speaker's route leaves FRR
// through BFD, long before the 9 s hold time.
func TestBFD(t *testing.T) {
	requireRouters(t)
	if _, err := os.Stat("/usr/lib/frr/bfdd"); err != nil {
		prereq.Missing(t, "needs /usr/lib/frr/bfdd (hack/deps.sh installs frr)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := kubelab.Up(ctx, kubelab.Options{
		Nodes: 1, ControllerBinary: binary(t, "pier-controller"), SpeakerBinary: binary(t, "pier-speaker"),
		SpeakerArgs: []string{"--bgp-warn-after", "3s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, env: env}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("speaker node1 output (tail):\n%s", env.Speakers[0].OutputTail(60))
			if out, err := w.frr.VTYSH("show bfd peers"); err == nil {
				t.Logf("FRR bfd peers:\n%s", out)
			}
		}
		if w.frr != nil {
			w.frr.Close()
		}
		env.Close()
	})
	neighbors := env.NodeNeighbors(nodeASN, false)
	neighbors[0].BFD = true
	if w.frr, err = env.StartFRR(ctx, t.TempDir(), routerASN, neighbors); err != nil {
		t.Fatal(err)
	}
	ns := kubelab.PierNamespace
	must(t, env.Pier.Create(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns},
		Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/25"}}}))
	must(t, env.Pier.Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr", Namespace: ns},
		Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: "198.51.100.1",
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second},
			BFD: &v1alpha1.BFDSpec{}}}))
	must(t, env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns},
		Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}}))
	addr := w.createService("web", "bgp", false)
	prefix := netip.PrefixFrom(addr, 32)
	w.wantNextHops(prefix, []string{nodeAddr(1)}, 60*time.Second)

	poll(t, "BFD Up in BGPSessionStatus frr-node1", 30*time.Second, func() error {
		st, err := w.sessionStatus("frr", 1)
		if err == nil && (st.Status.State != "Established" || st.Status.BFDState != "Up") {
			err = fmt.Errorf("%+v, want Established with BFD Up", st.Status)
		}
		return err
	})
	m, err := w.metrics(1)
	must(t, err)
	if k := `pier_speaker_bfd_session_up{local="198.51.100.11",peer="198.51.100.1"}`; m[k] != "1" {
		t.Errorf("metric %s = %q, want 1", k, m[k])
	}

	must(t, env.Speakers[0].Signal(syscall.SIGSTOP))
	gone := w.waitGone(prefix, nodeAddr(1), 8*time.Second)
	must(t, env.Speakers[0].Signal(syscall.SIGCONT))
	t.Logf("SIGSTOP: node1 gone from FRR after %s (BFD 300 ms x 3, hold time 9 s; machine shared)", gone.Round(time.Millisecond))
	w.wantNextHops(prefix, []string{nodeAddr(1)}, 60*time.Second)
}
