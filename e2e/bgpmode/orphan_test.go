package bgpmode

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// An address whose pool is deleted (an orphan) stays with its Service, so
// its route stays at the router, from every node, also from a speaker
// restarted meanwhile, until the Service is deleted.
func TestOrphanStaysAtRouter(t *testing.T) {
	w := newWorld(t, false)
	ctx, ns := context.Background(), kubelab.PierNamespace
	for name, cidr := range map[string]string{"doomed": "203.0.113.128/28", "live": "203.0.113.0/28"} {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{cidr}, AutoAssign: ptrBool(false)},
		}))
		must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{name}},
		}))
	}
	must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr", Namespace: ns},
		Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: "198.51.100.1",
			HoldTime: &metav1.Duration{Duration: 3 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: time.Second},
			ConnectTime: &metav1.Duration{Duration: time.Second}}}))

	kept := netip.PrefixFrom(w.createService("kept", "doomed", false), 32)
	w.wantNextHops(kept, allNodes(), time.Minute)

	must(t, w.env.Pier.Delete(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: ns}}))
	// Every speaker has parsed the configuration without the pool (the
	// advertisement naming it is counted), and has applied a later
	// change: the probe's route.
	for i := 1; i <= 3; i++ {
		poll(t, fmt.Sprintf("node%d's speaker sees the pool deleted", i), time.Minute, func() error {
			m, err := w.metrics(i)
			if v := m[`pier_speaker_config_invalid_objects{kind="BGPAdvertisement"}`]; err == nil && v != "1" {
				err = fmt.Errorf("invalid BGPAdvertisements %q, want 1", v)
			}
			return err
		})
	}
	probe := netip.PrefixFrom(w.createService("probe", "live", false), 32)
	w.wantNextHops(probe, allNodes(), time.Minute)
	if got, err := w.frr.NextHops(kept); err != nil || len(got) != 3 {
		t.Errorf("orphan %s of the deleted pool at FRR: next hops %v (%v), want all three nodes", kept, got, err)
	}

	t.Run("restarted speaker announces it from its state file", func(t *testing.T) {
		w.t = t
		must(t, w.env.Speakers[2].Signal(syscall.SIGTERM))
		w.waitGone(kept, nodeAddr(3), 30*time.Second)
		w.restartSpeaker(3)
		w.wantNextHops(kept, allNodes(), time.Minute)
	})

	w.t = t
	must(t, w.env.Pier.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "default"}}))
	w.wantNextHops(kept, nil, time.Minute)
	w.wantNextHops(probe, allNodes(), time.Minute)
}
