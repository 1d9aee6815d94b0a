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

// linkLocal is h's link-local IPv6 address on iface, waiting for it.
func (b *bgpLab) linkLocal(h *lab.Host, iface string) netip.Addr {
	b.t.Helper()
	var ll netip.Addr
	b.poll(h.NS+" has a link-local address on "+iface, 10*time.Second, func() (err error) {
		ll, err = h.LinkLocal(iface)
		return err
	})
	return ll
}

// zebraRoute is a route as FRR's zebra shows it (`show ip route X json`).
type zebraRoute struct {
	Protocol  string `json:"protocol"`
	Selected  bool   `json:"selected"`
	Installed bool   `json:"installed"`
	Nexthops  []struct {
		IP            string `json:"ip"`
		InterfaceName string `json:"interfaceName"`
		Active        bool   `json:"active"`
	} `json:"nexthops"`
}

// kernelRoute is the BGP route for p that zebra installed at the router,
// as "next hop dev interface".
func (b *bgpLab) kernelRoute(p netip.Prefix) (string, error) {
	cmd := "show ip route " + p.String() + " json"
	if p.Addr().Is6() {
		cmd = "show ipv6 route " + p.String() + " json"
	}
	var routes map[string][]zebraRoute
	if err := b.vtyshJSON(cmd, &routes); err != nil {
		return "", err
	}
	for _, r := range routes[p.String()] {
		if r.Protocol != "bgp" || !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if nh.Active {
				return nh.IP + " dev " + nh.InterfaceName, nil
			}
		}
	}
	family := "ipv4"
	if p.Addr().Is6() {
		family = "ipv6"
	}
	table, _ := b.vtysh("show bgp " + family + " unicast") // why: not received, or no usable next hop
	return "", fmt.Errorf("no installed BGP route for %s: %+v; BGP has:\n%s", p, routes, table)
}

// TestLinkLocalPeerWithFRR: a session over IPv6 link-local addresses on
// the node's eth1 (the router knows the node by its link-local address on
// its own eth1, as unnumbered fabrics configure it) comes up, carries
// IPv4 and IPv6 paths, and the router installs both in its kernel with a
// next hop it can reach: the node's IPv4 address, and the node's
// link-local address on the router's eth1 for IPv6 (RFC 2545). BFD runs
// over the link-local addresses too.
func TestLinkLocalPeerWithFRR(t *testing.T) {
	b := newFRRLab(t, func(l *lab.Lab) (*lab.Site, error) { return l.BuildSite(lab.SiteOptions{Nodes: 1}) })
	router := b.linkLocal(b.site.Router, "eth1")
	node := b.linkLocal(b.site.Nodes[0], "eth1")
	var sb strings.Builder
	fmt.Fprintf(&sb, "router bgp %d\n bgp router-id 198.51.100.1\n no bgp ebgp-requires-policy\n", routerASN)
	fmt.Fprintf(&sb, " neighbor %s remote-as %d\n neighbor %[1]s interface eth1\n neighbor %[1]s passive\n", node, nodeASN)
	fmt.Fprintf(&sb, " neighbor %s bfd\n neighbor %[1]s bfd profile pier\n", node)
	for _, f := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&sb, " address-family %s unicast\n  neighbor %s activate\n exit-address-family\n", f, node)
	}
	b.startFRRDaemons(sb.String() + "!\n")

	peer := bgp.Peer{Name: "frr-ll", Address: router.WithZone("eth1"), MyASN: nodeASN, PeerASN: routerASN,
		HoldTime: 3 * time.Second, ConnectTime: time.Second, Families: []bgp.Family{bgp.IPv4Unicast, bgp.IPv6Unicast},
		// What the speaker gives a session of the other family: the
		// node's own IPv4 address (pier-speaker takes its InternalIP).
		NextHop4: nodeAddr(1), BFD: &bgp.BFD{}}
	b.configure(1, []bgp.Peer{peer}, bfdPaths)
	want := map[netip.Prefix]string{vip: nodeAddr(1).String() + " dev eth1", vip6: node.String() + " dev eth1"}
	b.poll("link-local session up with BFD, both routes installed at the router", 30*time.Second, func() error {
		n, err := b.frrNeighbors()
		if err != nil {
			return err
		}
		if s := n[node.String()].BGPState; s != "Established" {
			return fmt.Errorf("FRR BGP with %s: %q (neighbors %v)", node, s, n)
		}
		bp, err := b.frrBFDPeers()
		if err != nil {
			return err
		}
		if s := bp[node.String()].Status; s != "up" {
			return fmt.Errorf("FRR BFD with %s: %q (%v)", node, s, bp)
		}
		for p, nh := range want {
			got, err := b.kernelRoute(p)
			if err != nil {
				return err
			}
			if got != nh {
				return fmt.Errorf("router's route to %s via %s, want via %s", p, got, nh)
			}
		}
		if st := b.peerStatus(1, "frr-ll"); st.State != "Established" || st.BFDState != "Up" {
			return fmt.Errorf("node1's status: BGP %s, BFD %q", st.State, st.BFDState)
		}
		return nil
	})
}
