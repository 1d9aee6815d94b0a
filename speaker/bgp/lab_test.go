package bgp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
	"github.com/pier-lb/pier/speaker/bgp"
)

const (
	routerASN = 64512
	nodeASN   = 64513
	md5Right  = "right-pw"
)

var (
	birdAddr = netip.MustParsePrefix("198.51.100.2/24")
	vip      = netip.MustParsePrefix("203.0.113.10/32")
)

// bgpLab is a site whose router runs FRR bgpd (eBGP, AS 64512), a second
// router namespace running BIRD 2 (iBGP, AS 64513) and announcer processes
// on the nodes.
type bgpLab struct {
	t       testing.TB
	lab     *lab.Lab
	site    *lab.Site
	frrName string
	frr     *lab.Process
	// frrProcs are the FRR daemons of a BFD lab (newBFDLab).
	frrProcs []frrProc
	birdSock string
	dir      string
	procs    map[int]*lab.Process
	cfgs     map[int]string
	// networks are IPv4 prefixes FRR originates towards the nodes.
	networks []netip.Prefix
	// frrOn is the host running FRR; nil: the site's router.
	frrOn *lab.Host
}

func (b *bgpLab) frrHost() *lab.Host {
	if b.frrOn != nil {
		return b.frrOn
	}
	return b.site.Router
}

// newBGPLab starts the lab; FRR originates networks (none by default).
func newBGPLab(t testing.TB, nodes int, networks ...netip.Prefix) *bgpLab {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "ip", "vtysh", "bird", "birdc")
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		prereq.Missing(t, "needs /usr/lib/frr/bgpd (hack/deps.sh installs frr)")
	}
	l, err := lab.New(lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bgpLab{t: t, lab: l, frrName: l.Prefix + "r", dir: t.TempDir(), procs: map[int]*lab.Process{}, cfgs: map[int]string{}, networks: networks}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range b.procs {
				t.Logf("node%d announcer output:\n%s", i, p.Output())
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		os.RemoveAll(filepath.Join("/var/run/frr", b.frrName))
	})
	// bgpd runs as user frr: it must read its config and write its sockets.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(b.dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if b.site, err = l.BuildSite(lab.SiteOptions{Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	b.startFRR(nodes)
	b.startBIRD(nodes)
	return b
}

func nodeAddr(i int) netip.Addr { v4, _ := lab.NodeAddrs(i); return v4.Addr() }

func nodeAddr6(i int) netip.Addr { _, v6 := lab.NodeAddrs(i); return v6.Addr() }

var routerAddr6 = netip.MustParseAddr("2001:db8:100::1")

func (b *bgpLab) startFRR(nodes int) {
	t := b.t
	var sb strings.Builder
	fmt.Fprintf(&sb, "frr defaults traditional\nhostname %s\nlog stdout debugging\n!\nrouter bgp %d\n bgp router-id 198.51.100.1\n", b.frrName, routerASN)
	sb.WriteString(" no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n")
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, " neighbor %s remote-as %d\n", nodeAddr(i), nodeASN)
		fmt.Fprintf(&sb, " neighbor %s passive\n", nodeAddr(i))
	}
	fmt.Fprintf(&sb, " neighbor %s password %s\n", nodeAddr(nodes), md5Right)
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, " neighbor %s remote-as %d\n neighbor %s passive\n", nodeAddr6(i), nodeASN, nodeAddr6(i))
	}
	sb.WriteString(" no bgp network import-check\n address-family ipv4 unicast\n  maximum-paths 8\n")
	for _, p := range b.networks {
		fmt.Fprintf(&sb, "  network %s\n", p)
	}
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, "  no neighbor %s activate\n", nodeAddr6(i))
	}
	sb.WriteString(" exit-address-family\n address-family ipv6 unicast\n  maximum-paths 8\n")
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, "  neighbor %s activate\n", nodeAddr6(i))
	}
	sb.WriteString(" exit-address-family\n!\n")
	if _, err := lab.FRRRunDir(b.frrName); err != nil {
		t.Fatal(err)
	}
	b.frr = b.startDaemon("bgpd", sb.String(), "show bgp summary json")
}

func (b *bgpLab) startBIRD(nodes int) {
	t := b.t
	h, err := b.lab.AddHost("bird")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.site.Segment.Connect(h, "eth1", birdAddr); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "router id %s;\nprotocol device {}\n", birdAddr.Addr())
	for i := 1; i <= nodes; i++ {
		fmt.Fprintf(&sb, "protocol bgp node%d {\n local %s as %d;\n neighbor %s as %d;\n passive on;\n direct;\n", i, birdAddr.Addr(), nodeASN, nodeAddr(i), nodeASN)
		if i == nodes {
			fmt.Fprintf(&sb, " password %q;\n", md5Right)
		}
		sb.WriteString(" ipv4 { import all; export none; gateway direct; };\n}\n")
	}
	conf := filepath.Join(b.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	b.birdSock = filepath.Join(b.dir, "bird.ctl")
	p, err := h.Start("bird", "-f", "-c", conf, "-s", b.birdSock, "-P", filepath.Join(b.dir, "bird.pid"))
	if err != nil {
		t.Fatal(err)
	}
	b.poll("bird answers birdc", 15*time.Second, func() error {
		if _, err := b.birdc("show", "status"); err != nil {
			return fmt.Errorf("%w; bird output:\n%s", err, p.Output())
		}
		return nil
	})
}

func (b *bgpLab) vtysh(cmd string) (string, error) { return lab.VTYSH(b.frrName, cmd) }

func (b *bgpLab) vtyshJSON(cmd string, v any) error { return lab.VTYSHJSON(b.frrName, cmd, v) }

func (b *bgpLab) birdc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.birdSock}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("birdc %v: %v: %s", args, err, out)
	}
	return string(out), nil
}

// poll retries f every 50ms until it succeeds or the deadline passes.
func (b *bgpLab) poll(what string, d time.Duration, f func() error) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peers for node i: FRR (eBGP) and BIRD (iBGP).
func peersFor(password string) []bgp.Peer {
	return []bgp.Peer{
		{Name: "frr", Address: netip.MustParseAddr("198.51.100.1"), MyASN: nodeASN, PeerASN: routerASN,
			HoldTime: 9 * time.Second, ConnectTime: time.Second, Password: password},
		{Name: "bird", Address: birdAddr.Addr(), MyASN: nodeASN, PeerASN: nodeASN,
			HoldTime: 9 * time.Second, ConnectTime: time.Second, Password: password},
		{Name: "frr6", Address: routerAddr6, MyASN: nodeASN, PeerASN: routerASN,
			HoldTime: 9 * time.Second, ConnectTime: time.Second, Password: password},
	}
}

// configure writes node i's announcer config and starts it, or makes the
// running one re-read it.
func (b *bgpLab) configure(i int, peers []bgp.Peer, paths []bgp.Path) {
	t := b.t
	t.Helper()
	cfg, err := json.Marshal(helperConfig{RouterID: nodeAddr(i), WarnAfter: 3 * time.Second, Peers: peers, Paths: paths})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(b.dir, fmt.Sprintf("node%d.json", i))
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, ok := b.procs[i]; ok {
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		return
	}
	p, err := b.site.Nodes[i-1].Start("env", "PIER_BGP_TEST_ROLE=announcer", "PIER_BGP_TEST_CONFIG="+file, os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	b.procs[i] = p
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "applied"); err != nil {
		t.Fatal(err)
	}
}

func (b *bgpLab) frrNeighbors() (map[string]lab.FRRNeighbor, error) {
	return lab.FRRNeighbors(b.frrName)
}

func (b *bgpLab) waitFRREstablished(addrs ...netip.Addr) {
	b.t.Helper()
	b.poll("FRR sessions established", 20*time.Second, func() error {
		n, err := b.frrNeighbors()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if s := n[a.String()].BGPState; s != "Established" {
				return fmt.Errorf("%s: %q", a, s)
			}
		}
		return nil
	})
}

func (b *bgpLab) waitBIRDEstablished(nodes ...int) {
	b.t.Helper()
	b.poll("BIRD sessions established", 20*time.Second, func() error {
		for _, i := range nodes {
			out, err := b.birdc("show", "protocols", fmt.Sprintf("node%d", i))
			if err != nil {
				return err
			}
			if !strings.Contains(out, "Established") {
				return fmt.Errorf("node%d: %s", i, out)
			}
		}
		return nil
	})
}

type frrRoute struct {
	Paths []struct {
		Nexthops []struct {
			IP string `json:"ip"`
		} `json:"nexthops"`
		Community *struct {
			String string `json:"string"`
		} `json:"community"`
		LargeCommunity *struct {
			String string `json:"string"`
		} `json:"largeCommunity"`
		Multipath bool `json:"multipath"`
	} `json:"paths"`
}

func (b *bgpLab) frrRoute(p netip.Prefix) (frrRoute, error) {
	var r frrRoute
	family := "ipv4"
	if p.Addr().Is6() {
		family = "ipv6"
	}
	return r, b.vtyshJSON("show bgp "+family+" unicast "+p.String()+" json", &r)
}

func (r frrRoute) nextHops() []string {
	var out []string
	for _, p := range r.Paths {
		for _, nh := range p.Nexthops {
			out = append(out, nh.IP)
		}
	}
	return out
}

// frrPrefixesFrom counts the prefixes FRR has received from node i.
func (b *bgpLab) frrPrefixesFrom(i int) (int, error) {
	var s struct {
		IPv4Unicast struct {
			Peers map[string]struct {
				PfxRcd int    `json:"pfxRcd"`
				State  string `json:"state"`
			} `json:"peers"`
		} `json:"ipv4Unicast"`
	}
	if err := b.vtyshJSON("show bgp summary json", &s); err != nil {
		return 0, err
	}
	return s.IPv4Unicast.Peers[nodeAddr(i).String()].PfxRcd, nil
}
