package bgp_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/speaker/bgp"
)

// A peer without an ASN (dynamicASN external) takes FRR's, and refuses
// BIRD, which opens with the node's own ASN (iBGP): the session is closed
// each time it comes up, with the reason in the peer's status.
func TestDynamicExternalASN(t *testing.T) {
	b := newBGPLab(t, 2) // node2 is the one FRR and BIRD want a password from
	peers := peersFor("")
	for i := range peers {
		peers[i].PeerASN = 0
	}
	b.configure(1, peers, []bgp.Path{{Prefix: vip}})
	b.waitFRREstablished(nodeAddr(1))
	b.poll("FRR's ASN in the status", 10*time.Second, func() error {
		if st := b.peerStatus(1, "frr"); st.State != "Established" || st.PeerASN != routerASN {
			return fmt.Errorf("frr: %+v", st)
		}
		return nil
	})
	b.poll("BIRD refused", 20*time.Second, func() error {
		st := b.peerStatus(1, "bird")
		if !strings.Contains(st.LastError, "dynamicASN external") || st.PeerASN != nodeASN {
			return fmt.Errorf("bird: %+v", st)
		}
		return nil
	})
	// Refused sessions do not stay up: BIRD sees none for most of the time
	// (each comes up and is closed at once, then retried after a second).
	up := 0
	for range 10 {
		if st := b.peerStatus(1, "bird"); st.State == "Established" {
			up++
		}
		time.Sleep(200 * time.Millisecond)
	}
	if up > 3 {
		t.Errorf("the refused BIRD session was Established in %d of 10 looks", up)
	}
	if _, err := b.frrRoute(vip); err != nil {
		t.Errorf("FRR has no route to %s over the dynamic session: %v", vip, err)
	}
}
