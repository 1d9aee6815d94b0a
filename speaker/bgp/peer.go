package bgp

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// Family is an address family a session carries.
type Family string

// Families supported.
const (
	IPv4Unicast Family = "ipv4-unicast"
	IPv6Unicast Family = "ipv6-unicast"
)

// Peer is one BGP session the node opens.
type Peer struct {
	// Name identifies the peer in Path.Peers, logs and metrics.
	Name string
	// Address is the router's address. A link-local IPv6 one carries the
	// node's interface towards the router as its zone (fe80::1%eth1): the
	// session is bound to that interface, and so is its BFD session.
	Address netip.Addr
	Port    uint16 // default 179
	MyASN   uint32
	// PeerASN is the router's ASN; 0 accepts the one the router opens
	// with, if it is not MyASN (eBGP: a router opening with MyASN has
	// the session closed at once, and retried after ConnectTime).
	PeerASN uint32
	// SourceAddress is zero (chosen by the kernel: for a link-local
	// Address, the interface's link-local address) or of the family of
	// Address, link-local exactly when Address is (its zone then is
	// Address's).
	SourceAddress netip.Addr
	// HoldTime 0 means the default 90s; KeepaliveTime 0 a third of it;
	// ConnectTime 0 means 10s (gobgp waits at least 1s).
	HoldTime, KeepaliveTime, ConnectTime time.Duration
	EBGPMultiHop                         bool
	// Password is the TCP MD5 key; empty means none. Never logged.
	Password        string
	GracefulRestart bool
	// Families default to the family of Address.
	Families []Family
	// NextHop4 and NextHop6 are the next hops of the IPv4 and IPv6 paths
	// sent to this peer; zero means the session's local address. A family
	// other than the session's own needs one (IPv6 paths over an IPv4
	// session, or the reverse): the session's local address is of the
	// wrong family there, so without it no path of that family goes to
	// the peer (see ExportNextHop).
	NextHop4, NextHop6 netip.Addr
	// MaxPrefixes is how many prefixes of one family the peer may send;
	// 0 means DefaultMaxPrefixes. Pier imports no route, but gobgp keeps
	// every path a peer sends (its adj-RIB-in) before any import policy
	// runs, so only this limit bounds the memory a peer can take: one
	// prefix more and the session is closed with a Cease (maximum number
	// of prefixes reached) and the peer's paths are dropped; gobgp dials
	// again later. Paths to other peers are not affected.
	MaxPrefixes uint32
	// BFD, when not nil, runs a BFD session with the peer that closes
	// the BGP session when it goes down (see BFD).
	BFD *BFD
}

// DefaultMaxPrefixes is the per-peer, per-family prefix limit when
// Peer.MaxPrefixes is 0. Speakers use no route, but a router commonly
// sends each speaker the paths of the other speakers (dropped for the AS
// loop, yet kept and counted by gobgp), so the limit must stay above the
// number of prefixes the whole cluster announces in one family; a leaked
// full table (about a million IPv4 paths) is far above it. At about 400
// bytes per such path it bounds a peer to a few MiB.
const DefaultMaxPrefixes = 10000

// LogValue keeps the password out of any log line that prints a Peer.
func (p Peer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", p.Name), slog.String("addr", p.Address.String()),
		slog.Uint64("asn", uint64(p.PeerASN)), slog.Bool("md5", p.Password != ""))
}

func (p *Peer) normalize() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("peer %s: empty name: %w", p.Address, ErrInvalid)
	case !p.Address.IsValid() || p.Address.IsUnspecified():
		return fmt.Errorf("peer %s: address %v: %w", p.Name, p.Address, ErrInvalid)
	case p.MyASN == 0:
		return fmt.Errorf("peer %s: local AS number must be non-zero: %w", p.Name, ErrInvalid)
	case p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4():
		return fmt.Errorf("peer %s: source %s and address %s differ in family: %w", p.Name, p.SourceAddress, p.Address, ErrInvalid)
	case linkLocal6(p.Address) != (p.Address.Zone() != ""):
		return fmt.Errorf("peer %s: address %s: want a zone (the interface) exactly on a link-local IPv6 address: %w", p.Name, p.Address, ErrInvalid)
	case p.SourceAddress.IsValid() && (linkLocal6(p.SourceAddress) != linkLocal6(p.Address) ||
		p.SourceAddress.Zone() != "" && p.SourceAddress.Zone() != p.Address.Zone()):
		return fmt.Errorf("peer %s: source %s for address %s: want a link-local source on the same interface exactly for a link-local address: %w",
			p.Name, p.SourceAddress, p.Address, ErrInvalid)
	case !validNextHop(p.NextHop4, true):
		return fmt.Errorf("peer %s: IPv4 next hop %s: %w", p.Name, p.NextHop4, ErrInvalid)
	case !validNextHop(p.NextHop6, false):
		return fmt.Errorf("peer %s: IPv6 next hop %s: want a global unicast IPv6 address: %w", p.Name, p.NextHop6, ErrInvalid)
	case p.HoldTime != 0 && p.HoldTime < 3*time.Second:
		return fmt.Errorf("peer %s: hold time %s below 3s: %w", p.Name, p.HoldTime, ErrInvalid)
	case p.HoldTime != 0 && p.KeepaliveTime > p.HoldTime:
		return fmt.Errorf("peer %s: keepalive %s above hold time: %w", p.Name, p.KeepaliveTime, ErrInvalid)
	}
	p.Address = p.Address.Unmap()
	if linkLocal6(p.SourceAddress) {
		p.SourceAddress = p.SourceAddress.WithZone(p.Address.Zone())
	}
	if p.Port == 0 {
		p.Port = 179
	}
	if p.HoldTime == 0 {
		p.HoldTime = 90 * time.Second
	}
	if p.KeepaliveTime == 0 {
		p.KeepaliveTime = (p.HoldTime / 3).Truncate(time.Second)
	}
	if p.ConnectTime == 0 {
		p.ConnectTime = 10 * time.Second
	}
	if p.MaxPrefixes == 0 {
		p.MaxPrefixes = DefaultMaxPrefixes
	}
	if len(p.Families) == 0 {
		p.Families = []Family{familyOf(p.Address)}
	}
	for _, f := range p.Families {
		if f != IPv4Unicast && f != IPv6Unicast {
			return fmt.Errorf("peer %s: family %q: %w", p.Name, f, ErrInvalid)
		}
	}
	if p.BFD != nil {
		b := *p.BFD
		b.normalize()
		p.BFD = &b
	}
	p.Families = slices.Clone(p.Families)
	slices.Sort(p.Families)
	p.Families = slices.Compact(p.Families)
	return nil
}

// linkLocal6 reports whether a is a link-local IPv6 address, meaningful
// only on one interface.
func linkLocal6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() && a.IsLinkLocalUnicast() }

// validNextHop accepts zero (none) or a unicast address of the family;
// an IPv6 next hop must be global (a link-local one needs the 32-byte form
// with a global address beside it).
func validNextHop(a netip.Addr, v4 bool) bool {
	if !a.IsValid() {
		return true
	}
	return a.Is4() == v4 && !a.Is4In6() && !a.IsUnspecified() && !a.IsMulticast() &&
		!a.IsLoopback() && (v4 || !a.IsLinkLocalUnicast())
}

// ExportNextHop is the next hop of the peer's paths of one family (v6 for
// IPv6): the configured one, or zero for the session's local address.
// send is false for a family other than the session's without a next hop
// configured: the local address (of the session's family) would be a next
// hop the router cannot use, so those paths are not sent.
func (p *Peer) ExportNextHop(v6 bool) (nh netip.Addr, send bool) {
	nh = p.NextHop4
	if v6 {
		nh = p.NextHop6
	}
	return nh, nh.IsValid() || p.Address.Is6() == v6
}

// refusedAS is the ASN the router may not open the session with: MyASN
// when any external ASN is accepted (PeerASN 0), else 0 (none).
func (p *Peer) refusedAS() uint32 {
	if p.PeerASN == 0 {
		return p.MyASN
	}
	return 0
}

// carries reports whether the session carries family f.
func (p *Peer) carries(f Family) bool { return slices.Contains(p.Families, f) }

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4Unicast
	}
	return IPv6Unicast
}

func apiFamily(f Family) *api.Family {
	if f == IPv6Unicast {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

func seconds(d time.Duration) uint64 { return uint64(d / time.Second) }

// apiPeer is the gobgp form of p.
func (p *Peer) apiPeer() *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.PeerASN,
			LocalAsn:        p.MyASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          seconds(p.HoldTime),
			KeepaliveInterval: seconds(p.KeepaliveTime),
			ConnectRetry:      seconds(p.ConnectTime),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.SourceAddress.IsValid() {
		ap.Transport.LocalAddress = p.SourceAddress.String()
	}
	if z := p.Address.Zone(); z != "" {
		// gobgp dials the zoned address (and, without a source, from the
		// interface's link-local address); SO_BINDTODEVICE keeps the
		// session on the interface whatever the routes say.
		ap.Transport.BindInterface = z
	}
	if p.EBGPMultiHop {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.GracefulRestart {
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
	}
	for _, f := range p.Families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true},
			PrefixLimits: &api.PrefixLimit{Family: apiFamily(f), MaxPrefixes: p.MaxPrefixes}}
		if p.GracefulRestart {
			// Without this, the capability lists no family and the router
			// keeps nothing when the session drops.
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	return ap
}

// samePeer reports whether two normalized peers need no session reset
// (BFD settings aside: they change the BFD session only).
func samePeer(a, b *Peer) bool {
	return a.Address == b.Address && a.Port == b.Port && a.MyASN == b.MyASN &&
		a.PeerASN == b.PeerASN && a.SourceAddress == b.SourceAddress &&
		a.HoldTime == b.HoldTime && a.KeepaliveTime == b.KeepaliveTime &&
		a.ConnectTime == b.ConnectTime && a.EBGPMultiHop == b.EBGPMultiHop &&
		a.Password == b.Password && a.GracefulRestart == b.GracefulRestart &&
		slices.Equal(a.Families, b.Families) && a.NextHop4 == b.NextHop4 && a.NextHop6 == b.NextHop6 &&
		a.MaxPrefixes == b.MaxPrefixes
}

// normalizePeers validates peers and indexes them by name.
func normalizePeers(peers []Peer) (map[string]*Peer, error) {
	out := make(map[string]*Peer, len(peers))
	// By address without zone: gobgp's events name a link-local peer
	// without its interface (see addrKey).
	addrs := map[netip.Addr]string{}
	for _, p := range peers {
		if err := p.normalize(); err != nil {
			return nil, err
		}
		if _, dup := out[p.Name]; dup {
			return nil, fmt.Errorf("peer %s: name used twice: %w", p.Name, ErrInvalid)
		}
		if other, dup := addrs[p.Address.WithZone("")]; dup {
			return nil, fmt.Errorf("peer %s: address %s also used by %s: %w", p.Name, p.Address, other, ErrInvalid)
		}
		addrs[p.Address.WithZone("")] = p.Name
		out[p.Name] = &p
	}
	return out, nil
}
