package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/lab"
)

// Neighbor is a BGP speaker a lab router accepts sessions from (the
// router is passive: the nodes dial).
type Neighbor struct {
	Name     string // BIRD protocol name; FRR ignores it
	Addr     netip.Addr
	ASN      uint32
	Password string // TCP MD5; empty: none
	// BothFamilies activates IPv4 and IPv6 unicast on the session,
	// whatever the family of Addr (FRR only).
	BothFamilies bool
	// Interface, for a link-local Addr, is the router's interface
	// towards the neighbor (FRR only: `neighbor X interface`).
	Interface string
	// BFD runs BFD with the neighbor (FRR only: `neighbor X bfd`, FRR's
	// default 300 ms x 3); StartFRR then starts bfdd too.
	BFD bool
}

// NodeNeighbors are the site's nodes on the L2 segment, IPv4 (v6 false) or
// IPv6, all with asn.
func (e *Env) NodeNeighbors(asn uint32, v6 bool) []Neighbor {
	var out []Neighbor
	for i := range e.Site.Nodes {
		v4a, v6a := lab.NodeAddrs(i + 1)
		n := Neighbor{Name: fmt.Sprintf("node%d", i+1), Addr: v4a.Addr(), ASN: asn}
		if v6 {
			n.Name, n.Addr = n.Name+"v6", v6a.Addr()
		}
		out = append(out, n)
	}
	return out
}

// FRR is an FRR instance (zebra and bgpd) in a lab host, named after the
// lab so that vtysh -N finds it.
type FRR struct {
	Name string
	run  string
}

// StartFRR runs zebra and bgpd on the site's router: AS asn, the given
// passive neighbors (IPv4 ones in ipv4 unicast, IPv6 ones in ipv6 unicast,
// those with BothFamilies in both),
// ECMP over up to 8 paths (eBGP and iBGP). dir holds the configuration.
func (e *Env) StartFRR(ctx context.Context, dir string, asn uint32, neighbors []Neighbor) (*FRR, error) {
	f := &FRR{Name: e.Lab.Prefix + "r"}
	// zebra and bgpd run as user frr: they read the configuration there.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(conf, []byte(frrConfig(f.Name, asn, neighbors)), 0o644); err != nil {
		return nil, err
	}
	var err error
	if f.run, err = lab.FRRRunDir(f.Name); err != nil {
		return nil, err
	}
	daemons := [][2]string{{"zebra", "show interface brief"}, {"bgpd", "show bgp summary json"}}
	if slices.ContainsFunc(neighbors, func(n Neighbor) bool { return n.BFD }) {
		daemons = slices.Insert(daemons, 1, [2]string{"bfdd", "show bfd peers"})
	}
	for _, d := range daemons {
		if _, err := lab.StartFRRDaemon(ctx, e.Site.Router, f.Name, d[0], conf, d[1]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func frrConfig(name string, asn uint32, neighbors []Neighbor) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "frr defaults traditional\nhostname %s\n!\nrouter bgp %d\n bgp router-id 198.51.100.1\n", name, asn)
	sb.WriteString(" no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n")
	for _, n := range neighbors {
		fmt.Fprintf(&sb, " neighbor %s remote-as %d\n neighbor %s passive\n", n.Addr, n.ASN, n.Addr)
		if n.Interface != "" {
			fmt.Fprintf(&sb, " neighbor %s interface %s\n", n.Addr, n.Interface)
		}
		if n.Password != "" {
			fmt.Fprintf(&sb, " neighbor %s password %s\n", n.Addr, n.Password)
		}
		if n.BFD {
			fmt.Fprintf(&sb, " neighbor %s bfd\n", n.Addr)
		}
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&sb, " address-family %s unicast\n  maximum-paths 8\n  maximum-paths ibgp 8\n", fam)
		for _, n := range neighbors {
			if n.BothFamilies || n.Addr.Is4() == (fam == "ipv4") {
				fmt.Fprintf(&sb, "  neighbor %s activate\n", n.Addr)
			} else {
				fmt.Fprintf(&sb, "  no neighbor %s activate\n", n.Addr)
			}
		}
		sb.WriteString(" exit-address-family\n")
	}
	sb.WriteString("!\n")
	return sb.String()
}

// VTYSH runs one vtysh command against the instance.
func (f *FRR) VTYSH(cmd string) (string, error) { return lab.VTYSH(f.Name, cmd) }

// JSON runs a vtysh command that prints JSON and decodes it into v.
func (f *FRR) JSON(cmd string, v any) error { return lab.VTYSHJSON(f.Name, cmd, v) }

// FRRPath is one path of a route as FRR shows it.
type FRRPath struct {
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	LocPrf    *int `json:"locPrf"`
	Multipath bool `json:"multipath"`
	Stale     bool `json:"stale"`
}

// Route is FRR's BGP entry for p (no paths when it has none).
func (f *FRR) Route(p netip.Prefix) ([]FRRPath, error) {
	family := "ipv4"
	if p.Addr().Is6() {
		family = "ipv6"
	}
	var r struct {
		Paths []FRRPath `json:"paths"`
	}
	return r.Paths, f.JSON("show bgp "+family+" unicast "+p.String()+" json", &r)
}

// NextHops are the next hops of FRR's paths for p, in FRR's order.
func (f *FRR) NextHops(p netip.Prefix) ([]string, error) {
	paths, err := f.Route(p)
	var out []string
	for _, path := range paths {
		for _, nh := range path.Nexthops {
			out = append(out, nh.IP)
		}
	}
	return out, err
}

// Neighbors reports FRR's sessions by neighbor address.
func (f *FRR) Neighbors() (map[string]lab.FRRNeighbor, error) { return lab.FRRNeighbors(f.Name) }

// PrefixesFrom counts the IPv4 prefixes FRR has received from each
// neighbor, by address (0 for a session that is down).
func (f *FRR) PrefixesFrom() (map[string]int, error) {
	var s struct {
		IPv4Unicast struct {
			Peers map[string]struct {
				PfxRcd int    `json:"pfxRcd"`
				State  string `json:"state"`
			} `json:"peers"`
		} `json:"ipv4Unicast"`
	}
	if err := f.JSON("show bgp summary json", &s); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for addr, p := range s.IPv4Unicast.Peers {
		if p.State == "Established" {
			out[addr] = p.PfxRcd
		}
	}
	return out, nil
}

// Close removes the instance's run directory (its processes end with the
// lab).
func (f *FRR) Close() { os.RemoveAll(f.run) }

// BIRD is a BIRD 2 instance in its own lab host on the site's segment.
type BIRD struct {
	Host *lab.Host
	Addr netip.Addr
	sock string
	proc *lab.Process
}

// StartBIRD adds a host "bird" on the segment at addr (a /24 of the
// segment) and runs BIRD 2 in it: AS asn, passive sessions with the
// neighbors, importing IPv4 routes with their sender as next hop, exporting
// nothing. dir holds the configuration and the control socket.
func (e *Env) StartBIRD(ctx context.Context, dir string, addr netip.Prefix, asn uint32, neighbors []Neighbor) (*BIRD, error) {
	h, err := e.Lab.AddHost("bird")
	if err != nil {
		return nil, err
	}
	if err := e.Site.Segment.Connect(h, "eth1", addr); err != nil {
		return nil, err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "router id %s;\nprotocol device {}\n", addr.Addr())
	for _, n := range neighbors {
		fmt.Fprintf(&sb, "protocol bgp %s {\n local %s as %d;\n neighbor %s as %d;\n passive on;\n direct;\n", n.Name, addr.Addr(), asn, n.Addr, n.ASN)
		if n.Interface != "" {
			fmt.Fprintf(&sb, " neighbor %s interface %s\n", n.Addr, n.Interface)
		}
		if n.Password != "" {
			fmt.Fprintf(&sb, " password %q;\n", n.Password)
		}
		sb.WriteString(" ipv4 { import all; export none; gateway direct; };\n}\n")
	}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(sb.String()), 0o644); err != nil {
		return nil, err
	}
	b := &BIRD{Host: h, Addr: addr.Addr(), sock: filepath.Join(dir, "bird.ctl")}
	if b.proc, err = h.Start("bird", "-f", "-c", conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid")); err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		_, err := b.Birdc("show", "status")
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("bird never answered birdc: %w; output:\n%s", err, b.proc.Output())
	}
	return b, nil
}

// Birdc runs one birdc command.
func (b *BIRD) Birdc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("birdc %v: %v: %s", args, err, out)
	}
	return string(out), nil
}
