package lab

import (
	"fmt"
	"net/netip"
)

// A Site is the standard lab topology that tests and the demo share:
//
//	                 management 192.0.2.x/24 (root namespace: control plane)
//	                     |        |        |
//	client --- router === node1 == node2 == node3     (=== L2 segment "l2")
//	198.18.0.10   198.51.100.1    .11      .12      .13
//
// The L2 segment is 198.51.100.0/24 and 2001:db8:100::/64 (LoadBalancer pool
// 198.51.100.200-250); the client network is 198.18.0.0/24 and
// 2001:db8:18::/64. The router forwards between them; the client reaches the
// segment and the BGP range 203.0.113.0/24 through it; nodes reach client
// networks through it. Nothing routes anywhere else.
type Site struct {
	Nodes   []*Host
	Router  *Host
	Client  *Host
	Segment *Switch
	// NodeMgmt[i] is Nodes[i]'s management address; the control plane for
	// the site listens on Lab.Gateway().
	NodeMgmt []netip.Addr
}

// Addresses of the standard site.
var (
	SegmentV4 = netip.MustParsePrefix("198.51.100.0/24")
	SegmentV6 = netip.MustParsePrefix("2001:db8:100::/64")
	ClientV4  = netip.MustParsePrefix("198.18.0.0/24")
	ClientV6  = netip.MustParsePrefix("2001:db8:18::/64")
	BGPRange  = netip.MustParsePrefix("203.0.113.0/24")
	// ClientNets is everything behind the router, as nodes route it.
	ClientNets = netip.MustParsePrefix("198.18.0.0/15")
)

// MaxSiteNodes is the largest site: node i is .10+i on the segment, below
// the LoadBalancer pool at .200, and the management network (192.0.2.0/24
// from .11) holds more.
const MaxSiteNodes = 189

// SiteOptions sizes the standard site.
type SiteOptions struct {
	Nodes int // default 3, at most MaxSiteNodes
}

// BuildSite creates the standard topology in l.
func (l *Lab) BuildSite(opts SiteOptions) (*Site, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes < 1 || opts.Nodes > MaxSiteNodes {
		return nil, fmt.Errorf("site: %d nodes: want 1 to %d", opts.Nodes, MaxSiteNodes)
	}
	if err := raiseHostLimits(opts.Nodes); err != nil {
		return nil, fmt.Errorf("site: %w", err)
	}
	s := &Site{}
	var err error
	if s.Segment, err = l.AddSwitch("l2"); err != nil {
		return nil, err
	}
	if err := s.buildRouterAndClient(l); err != nil {
		return nil, err
	}
	for i := 1; i <= opts.Nodes; i++ {
		if err := s.addNode(l, i); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Site) buildRouterAndClient(l *Lab) error {
	var err error
	if s.Router, err = l.AddHost("router"); err != nil {
		return err
	}
	if s.Client, err = l.AddHost("client"); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return s.Router.EnableForwarding() },
		func() error { return s.Segment.Connect(s.Router, "eth1", hostAt(SegmentV4, 1), hostAt(SegmentV6, 1)) },
		func() error { return l.ConnectHosts(s.Router, "eth2", s.Client, "eth0") },
		func() error { return s.Router.AddAddr("eth2", hostAt(ClientV4, 1)) },
		func() error { return s.Router.AddAddr("eth2", hostAt(ClientV6, 1)) },
		func() error { v4, _ := ClientAddrs(); return s.Client.AddAddr("eth0", v4) },
		func() error { _, v6 := ClientAddrs(); return s.Client.AddAddr("eth0", v6) },
		func() error { return s.Client.AddRoute(SegmentV4, hostAt(ClientV4, 1).Addr()) },
		func() error { return s.Client.AddRoute(BGPRange, hostAt(ClientV4, 1).Addr()) },
		func() error { return s.Client.AddRoute(SegmentV6, hostAt(ClientV6, 1).Addr()) },
	}
	return runSteps(steps)
}

func (s *Site) addNode(l *Lab, i int) error {
	n, err := l.AddHost(fmt.Sprintf("node%d", i))
	if err != nil {
		return err
	}
	s.Nodes = append(s.Nodes, n)
	mgmt, err := l.AttachManagement(n)
	if err != nil {
		return err
	}
	s.NodeMgmt = append(s.NodeMgmt, mgmt)
	v4, v6 := NodeAddrs(i)
	return runSteps([]func() error{
		func() error { return s.Segment.Connect(n, "eth1", v4, v6) },
		func() error { return n.AddRoute(ClientNets, hostAt(SegmentV4, 1).Addr()) },
		func() error { return n.AddRoute(ClientV6, hostAt(SegmentV6, 1).Addr()) },
	})
}

// NodeAddrs returns node i's (1-based) addresses on the L2 segment.
func NodeAddrs(i int) (v4, v6 netip.Prefix) {
	return hostAt(SegmentV4, 10+i), hostAt(SegmentV6, 0x10+i)
}

// ClientAddrs returns the client's addresses.
func ClientAddrs() (v4, v6 netip.Prefix) {
	return hostAt(ClientV4, 10), hostAt(ClientV6, 10)
}

// hostAt returns the n-th address of p, with p's length.
func hostAt(p netip.Prefix, n int) netip.Prefix {
	a := p.Masked().Addr().AsSlice()
	for i := len(a) - 1; n > 0 && i >= 0; i-- {
		sum := int(a[i]) + n
		a[i] = byte(sum)
		n = sum >> 8
	}
	addr, _ := netip.AddrFromSlice(a)
	return netip.PrefixFrom(addr, p.Bits())
}

func runSteps(steps []func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
