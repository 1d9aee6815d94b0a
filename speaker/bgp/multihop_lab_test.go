package bgp_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/speaker/bgp"
)

// TestBFDMultihopWithFRR: BGP (ebgpMultiHop) with multihop BFD (RFC 5883)
// to FRR one router away: FRR runs on the site's client host, behind the
// site's router, which forwards (and decrements the TTL of) every packet.
// BFD comes up on both sides as multihop, IPv4 and IPv6; a frozen node
// loses its routes at FRR through BFD.
func TestBFDMultihopWithFRR(t *testing.T) {
	b := newFRRLab(t, func(l *lab.Lab) (*lab.Site, error) { return l.BuildSite(lab.SiteOptions{Nodes: 1}) })
	b.frrOn = b.site.Client
	client4, client6 := lab.ClientAddrs()
	var sb strings.Builder
	fmt.Fprintf(&sb, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n", routerASN, client4.Addr())
	for _, a := range []netip.Addr{nodeAddr(1), nodeAddr6(1)} {
		fmt.Fprintf(&sb, " neighbor %s remote-as %d\n neighbor %[1]s passive\n neighbor %[1]s ebgp-multihop 255\n", a, nodeASN)
		fmt.Fprintf(&sb, " neighbor %s bfd\n neighbor %[1]s bfd profile pier\n", a)
	}
	fmt.Fprintf(&sb, " address-family ipv4 unicast\n  no neighbor %s activate\n exit-address-family\n", nodeAddr6(1))
	fmt.Fprintf(&sb, " address-family ipv6 unicast\n  neighbor %s activate\n exit-address-family\n!\n", nodeAddr6(1))
	b.startFRRDaemons(sb.String())

	mh := &bgp.BFD{Multihop: true}
	peers := []bgp.Peer{
		{Name: "frr", Address: client4.Addr(), MyASN: nodeASN, PeerASN: routerASN, EBGPMultiHop: true,
			HoldTime: 3 * time.Second, ConnectTime: time.Second, BFD: mh},
		{Name: "frr6", Address: client6.Addr(), MyASN: nodeASN, PeerASN: routerASN, EBGPMultiHop: true,
			HoldTime: 3 * time.Second, ConnectTime: time.Second, BFD: mh},
	}
	b.configure(1, peers, bfdPaths)
	b.waitBFDUp(1)
	bp, err := b.frrBFDPeers()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{nodeAddr(1), nodeAddr6(1)} {
		if !bp[a.String()].Multihop {
			t.Errorf("FRR's BFD session with %s is not multihop: %+v", a, bp[a.String()])
		}
	}
	b.freezeNode1()
}
