package bgp

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no router id: %v, want ErrInvalid", err)
	}
	if _, err := New(Options{RouterID: netip.MustParseAddr("2001:db8::1")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("IPv6 router id: %v, want ErrInvalid", err)
	}
	a, err := New(Options{RouterID: netip.MustParseAddr("198.51.100.11")})
	if err != nil {
		t.Fatal(err)
	}
	if a.opts.ListenPort != -1 {
		t.Errorf("listen port %d, want -1", a.opts.ListenPort)
	}
}

var ll1 = netip.MustParseAddr("fe80::1%eth1")

func TestNormalizePeers(t *testing.T) {
	base := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64513, PeerASN: 64512}
	bad := []func(p *Peer){
		func(p *Peer) { p.Name = "" },
		func(p *Peer) { p.Address = netip.Addr{} },
		func(p *Peer) { p.MyASN = 0 },
		func(p *Peer) { p.SourceAddress = netip.MustParseAddr("2001:db8::1") },
		func(p *Peer) { p.HoldTime = 1e9 },
		func(p *Peer) { p.Families = []Family{"l2vpn"} },
		func(p *Peer) { p.Address = netip.MustParseAddr("fe80::1") },                            // link-local without interface
		func(p *Peer) { p.Address = netip.MustParseAddr("2001:db8::1%eth1") },                   // zone on a global address
		func(p *Peer) { p.Address, p.SourceAddress = ll1, netip.MustParseAddr("2001:db8::2") },  // global source
		func(p *Peer) { p.Address, p.SourceAddress = ll1, netip.MustParseAddr("fe80::2%eth2") }, // source elsewhere
		func(p *Peer) { p.Address = netip.MustParseAddr("2001:db8::1"); p.SourceAddress = ll1 }, // link-local source
	}
	for i, mod := range bad {
		p := base
		mod(&p)
		if _, err := normalizePeers([]Peer{p}); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
	other := base
	other.Name = "r2"
	if _, err := normalizePeers([]Peer{base, other}); !errors.Is(err, ErrInvalid) {
		t.Errorf("same address twice: %v, want ErrInvalid", err)
	}
	llOther := base
	llOther.Name, llOther.Address = "r2", netip.MustParseAddr("fe80::1%eth2")
	base.Address = ll1
	if _, err := normalizePeers([]Peer{base, llOther}); !errors.Is(err, ErrInvalid) {
		t.Errorf("same link-local address on two interfaces: %v, want ErrInvalid", err)
	}
	base.SourceAddress = netip.MustParseAddr("fe80::2")
	ll, err := normalizePeers([]Peer{base})
	if err != nil {
		t.Fatal(err)
	}
	if got := ll["r1"]; got.SourceAddress.String() != "fe80::2%eth1" || got.apiPeer().Transport.BindInterface != "eth1" {
		t.Errorf("link-local peer: source %s, bind to %q; want fe80::2%%eth1 on eth1", got.SourceAddress, got.apiPeer().Transport.BindInterface)
	}
	base.Address, base.SourceAddress = netip.MustParseAddr("198.51.100.1"), netip.Addr{}
	got, err := normalizePeers([]Peer{base})
	if err != nil {
		t.Fatal(err)
	}
	p := got["r1"]
	if p.Port != 179 || p.HoldTime.Seconds() != 90 || p.KeepaliveTime.Seconds() != 30 || !cmp.Equal(p.Families, []Family{IPv4Unicast}) {
		t.Errorf("defaults: %+v", p)
	}
	changed := *p
	changed.Password = "x"
	if samePeer(p, &changed) {
		t.Error("a password change must reset the peer")
	}
}

func TestDiffPaths(t *testing.T) {
	lp := uint32(200)
	a := &Announcer{paths: map[netip.Prefix]*Path{}}
	pfx := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	for _, p := range []Path{
		{Prefix: pfx("203.0.113.1/32")},
		{Prefix: pfx("203.0.113.2/32"), Peers: []string{"a"}},
		{Prefix: pfx("203.0.113.3/32")},
		{Prefix: pfx("203.0.113.4/32")},
	} {
		a.paths[p.Prefix] = &p
	}
	want, err := normalizePaths([]Path{
		{Prefix: pfx("203.0.113.1/32")},                            // same
		{Prefix: pfx("203.0.113.2/32"), Peers: []string{"b", "a"}}, // re-peered
		{Prefix: pfx("203.0.113.3/32"), LocalPref: &lp},            // changed
		{Prefix: pfx("203.0.113.5/32")},                            // new; .4 gone
	})
	if err != nil {
		t.Fatal(err)
	}
	withdraw, announce := a.diffPaths(want)
	var ann []netip.Prefix
	for _, p := range announce {
		ann = append(ann, p.Prefix)
	}
	if d := cmp.Diff([]netip.Prefix{pfx("203.0.113.2/32"), pfx("203.0.113.4/32")}, withdraw, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); d != "" {
		t.Errorf("withdraw (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]netip.Prefix{pfx("203.0.113.2/32"), pfx("203.0.113.3/32"), pfx("203.0.113.5/32")}, ann, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); d != "" {
		t.Errorf("announce (-want +got):\n%s", d)
	}
	if _, err := normalizePaths([]Path{{Prefix: pfx("203.0.113.1/32")}, {Prefix: pfx("203.0.113.1/32")}}); !errors.Is(err, ErrDuplicatePrefix) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := normalizePaths([]Path{{Prefix: pfx("2001:db8::1/128"), NextHop: netip.MustParseAddr("198.51.100.1")}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("next hop of the other family: %v", err)
	}
}

func TestPathAttributes(t *testing.T) {
	lp := uint32(300)
	p := Path{Prefix: netip.MustParsePrefix("2001:db8:113::10/128"), LocalPref: &lp,
		Communities: []uint32{64513<<16 | 100}, LargeCommunities: [][3]uint32{{64513, 1, 2}}}
	ap, err := p.apiPath()
	if err != nil {
		t.Fatal(err)
	}
	if len(ap.Pattrs) != 5 { // origin, mp-reach, local-pref, communities, large communities
		t.Errorf("%d attributes, want 5", len(ap.Pattrs))
	}
}

func TestLoggerRedactsPasswords(t *testing.T) {
	var buf bytes.Buffer
	var dialed, downReason string
	g := newGobgpLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		func(addr string, _ any) { dialed = addr }, func(_ string, r any) { downReason = r.(string) })
	g.addSecret("s3cret")
	g.Info("config s3cret", gobgplog.Fields{"Key": "198.51.100.1", "AuthPassword": "s3cret", "Conf": "{pw: s3cret}"})
	g.Debug("failed to connect", gobgplog.Fields{"Key": "198.51.100.1", "Error": "i/o timeout"})
	g.Info("Peer Down", gobgplog.Fields{"Key": "198.51.100.1", "Reason": "notification-received code cease, key s3cret"})
	out := buf.String()
	if downReason != "notification-received code cease, key <redacted>" {
		t.Errorf("peer-down hook got %q", downReason)
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("password logged:\n%s", out)
	}
	if !strings.Contains(out, "peer_addr=198.51.100.1") || dialed != "198.51.100.1" {
		t.Errorf("fields or dial hook lost: %q, %q", out, dialed)
	}
}

func TestWarnStuckOncePerOutage(t *testing.T) {
	var buf bytes.Buffer
	clk := clocktesting.NewFakeClock(time.Now())
	s := newSessions(slog.New(slog.NewTextHandler(&buf, nil)), NewMetrics(nil), clk)
	p := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), Password: "s3cret"}
	s.add(&p)
	s.dialError("198.51.100.1", "i/o timeout")
	clk.Step(time.Minute)
	s.warnStuck(30 * time.Second)
	s.warnStuck(30 * time.Second)
	out := buf.String()
	if n := strings.Count(out, "TCP MD5 password is set"); n != 1 {
		t.Errorf("%d MD5 warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `err="i/o timeout"`) || strings.Contains(out, "s3cret") {
		t.Errorf("warning lacks the dial error or shows the password:\n%s", out)
	}
}

func TestExportNextHop(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:100::1")
	nh4, nh6 := netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("2001:db8:100::11")
	type fam struct {
		NextHop string
		Send    bool
	}
	tests := []struct {
		name           string
		peer           Peer
		local          netip.Addr // of a link-local session
		wantV4, wantV6 fam
	}{
		{"IPv4 session: local address for IPv4, no IPv6 without a next hop", Peer{Address: v4}, netip.Addr{},
			fam{"", true}, fam{"", false}},
		{"IPv4 session with an IPv6 next hop", Peer{Address: v4, NextHop6: nh6}, netip.Addr{},
			fam{"", true}, fam{nh6.String(), true}},
		{"IPv6 session: local address for IPv6, no IPv4 without a next hop", Peer{Address: v6}, netip.Addr{},
			fam{"", false}, fam{"", true}},
		{"IPv6 session with an IPv4 next hop", Peer{Address: v6, NextHop4: nh4}, netip.Addr{},
			fam{nh4.String(), true}, fam{"", true}},
		{"same-family next hop overrides the local address", Peer{Address: v4, NextHop4: nh4}, netip.Addr{},
			fam{nh4.String(), true}, fam{"", false}},
		// gobgp would send :: (it cannot parse its zoned local address).
		{"link-local session: its local link-local address for IPv6", Peer{Address: ll1, NextHop4: nh4}, netip.MustParseAddr("fe80::2"),
			fam{nh4.String(), true}, fam{"fe80::2", true}},
		{"link-local session with an IPv6 next hop", Peer{Address: ll1, NextHop6: nh6}, netip.MustParseAddr("fe80::2"),
			fam{"", false}, fam{nh6.String(), true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]fam
			for i, isV6 := range []bool{false, true} {
				nh, send := tc.peer.ExportNextHop(isV6)
				got[i] = fam{Send: send}
				if nh.IsValid() {
					got[i].NextHop = nh.String()
				}
			}
			if tc.local.IsValid() && !tc.peer.NextHop6.IsValid() {
				got[1].NextHop = tc.local.String() // set by the policy alone
			}
			if diff := cmp.Diff([2]fam{tc.wantV4, tc.wantV6}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// The export policy has a statement exactly for the families
			// sent, with the next-hop action when there is one.
			var stmts [2]*fam
			for _, st := range exportPolicy(&tc.peer, tc.local).Statements {
				f := &fam{Send: true}
				if a := st.Actions.Nexthop; a != nil {
					f.NextHop = a.Address
				}
				stmts[boolIndex(strings.HasSuffix(st.Conditions.PrefixSet.Name, "-v6"))] = f
			}
			for i, want := range []fam{tc.wantV4, tc.wantV6} {
				if (stmts[i] != nil) != want.Send || (stmts[i] != nil && *stmts[i] != want) {
					t.Errorf("family %d: statement %+v, want %+v", i, stmts[i], want)
				}
			}
		})
	}
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestNextHopValidation(t *testing.T) {
	base := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64513, PeerASN: 64512,
		Families: []Family{IPv4Unicast, IPv6Unicast}}
	for _, tc := range []struct {
		v4, v6 string
		ok     bool
	}{
		{"", "2001:db8:100::11", true},
		{"198.51.100.11", "", true},
		{"", "::ffff:198.51.100.11", false}, // the mapped form a router cannot use
		{"", "fe80::1", false},
		{"", "::", false},
		{"2001:db8::1", "", false},
		{"", "198.51.100.11", false},
		{"0.0.0.0", "", false},
	} {
		p := base
		if tc.v4 != "" {
			p.NextHop4 = netip.MustParseAddr(tc.v4)
		}
		if tc.v6 != "" {
			p.NextHop6 = netip.MustParseAddr(tc.v6)
		}
		_, err := normalizePeers([]Peer{p})
		if (err == nil) != tc.ok {
			t.Errorf("next hops %q %q: err %v, want ok %v", tc.v4, tc.v6, err, tc.ok)
		}
	}
	a, b := base, base
	b.NextHop6 = netip.MustParseAddr("2001:db8:100::11")
	if samePeer(&a, &b) {
		t.Error("a changed next hop must reset the peer (its export policy changes)")
	}
}

// gobgp reports the prefix limit after every queued UPDATE until the
// session closes; the announcer counts and logs one event per session.
func TestPrefixLimitOneEventPerSession(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	m := NewMetrics(prometheus.NewRegistry())
	s := newSessions(log, m, clock.RealClock{})
	p := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64513, PeerASN: 64512}
	if err := p.normalize(); err != nil {
		t.Fatal(err)
	}
	s.add(&p)
	g := newGobgpLogger(log, nil, s.peerDown)
	g.onPrefixLimit, g.onPeerUp = s.prefixLimit, s.peerUp
	key := gobgplog.Fields{"Key": "198.51.100.1", "Topic": "Peer"}
	limit := gobgplog.Fields{"Key": "198.51.100.1", "Topic": "Peer", "Family": "ipv4-unicast"}
	warnPct := gobgplog.Fields{"Key": "198.51.100.1", "Topic": "Peer", "Family": "ipv4-unicast", "Pct": 80}
	for range 2 { // two sessions, each flooding
		g.Info("Peer Up", key)
		g.Warn("prefix limit reached", warnPct) // a threshold warning: no event
		for range 3 {
			g.Warn("prefix limit reached", limit)
		}
		g.Info("Peer Down", gobgplog.Fields{"Key": "198.51.100.1", "Reason": "notification-sent code 6(cease) subcode 1(maximum number of prefixes reached)"})
		g.Warn("prefix limit reached", limit) // queued before the close
	}
	var got dto.Metric
	if err := m.overLimit.WithLabelValues("r1").Write(&got); err != nil {
		t.Fatal(err)
	}
	if got := got.GetCounter().GetValue(); got != 2 {
		t.Errorf("pier_bgp_prefix_limit_exceeded_total = %v, want 2", got)
	}
	if n := strings.Count(buf.String(), "prefix limit exceeded"); n != 2 {
		t.Errorf("%d event lines, want 2:\n%s", n, buf.String())
	}
	want := "prefix limit 10000 exceeded, the peer's routes dropped; session closed: notification-sent code 6(cease) subcode 1(maximum number of prefixes reached)"
	if diff := cmp.Diff(want, s.byAddr["198.51.100.1"].lastErr); diff != "" {
		t.Errorf("last error (-want +got):\n%s", diff)
	}
}
