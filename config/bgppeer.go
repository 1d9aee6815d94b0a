package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// BGP session defaults.
const (
	DefaultPeerPort    = 179
	DefaultHoldTime    = 90 * time.Second
	DefaultConnectTime = 10 * time.Second
	// DefaultPasswordKey is the Secret key holding the TCP MD5 password.
	DefaultPasswordKey = "password"
	// DefaultPasswordNamespace holds the BGP password Secrets unless the
	// installation names another (Objects.PasswordNamespace).
	DefaultPasswordNamespace = "pier-bgp-passwords"
	// asTrans is AS_TRANS (RFC 6793), a placeholder, never a real ASN.
	asTrans = 23456
	// maxHoldTime is the largest hold time the OPEN message can carry.
	maxHoldTime = 65535 * time.Second
)

// BGPPeer is one BGP session, opened from every selected node.
type BGPPeer struct {
	Namespace, Name string
	MyASN           uint32
	// PeerASN is the router's ASN; 0 with DynamicASN external, where the
	// speaker takes it from the router's OPEN (any but MyASN). With
	// DynamicASN internal it is MyASN.
	PeerASN    uint32
	DynamicASN v1alpha1.DynamicASN
	// Address has no zone; a link-local IPv6 one comes with Interface.
	Address netip.Addr
	// Interface is the node's interface towards a link-local IPv6
	// Address, and empty for any other address.
	Interface string
	Port      uint16 // default 179
	// SourceAddress, when valid, is the local address of the session; it
	// has the family of Address, and is link-local exactly when Address
	// is (then on Interface).
	SourceAddress netip.Addr
	// HoldTime is 0 (no keepalives, no hold timer) or 3s to 65535s, whole
	// seconds; default 90s. KeepaliveTime defaults to a third of HoldTime,
	// rounded down to whole seconds. ConnectTime (default 10s) is the retry
	// interval while the session is down.
	HoldTime, KeepaliveTime, ConnectTime time.Duration
	EBGPMultiHop                         bool
	GracefulRestart                      bool
	// PasswordSecret names the Secret key holding the TCP MD5 password;
	// nil means no password. The password itself is never in the Config.
	PasswordSecret *SecretRef
	// NodeSelectors pick the nodes that open the session; empty means all.
	NodeSelectors Selectors
	// Families the session carries, IPv4Unicast first, no duplicates;
	// default: the family of Address. A family other than the session's
	// own (IPv6 routes over an IPv4 session or the reverse) is allowed:
	// the routes then carry a next hop of the other family (RFC 8950
	// extended next hop), which the router must support.
	Families []v1alpha1.AddressFamily
	// MaxPrefixes is the per-family limit on the prefixes the peer may
	// send; 0 means the announcer's default.
	MaxPrefixes uint32
	// BFD, when not nil, runs a BFD session beside the BGP session.
	BFD *BFD
}

// BFD defaults and limits.
const (
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDDetectMult = 3
	// DefaultBFDMinimumTTL accepts multihop packets that crossed at most
	// one router.
	DefaultBFDMinimumTTL = 254
	minBFDInterval       = 10
	maxBFDInterval       = 60000
)

// BFD is a BGPPeer's BFD session, with defaults applied.
type BFD struct {
	// ReceiveInterval and TransmitInterval are the intervals this node
	// offers: 10ms to 60s, whole milliseconds, default 300ms.
	ReceiveInterval, TransmitInterval time.Duration
	// DetectMultiplier is 2 to 255, default 3.
	DetectMultiplier uint8
	Passive          bool
	// Multihop defaults to the peer's EBGPMultiHop.
	Multihop bool
	// MinimumTTL is 0 for single hop (which always requires 255), else 1
	// to 255, default DefaultBFDMinimumTTL.
	MinimumTTL uint8
}

// SecretRef names one key of a Secret.
type SecretRef struct{ Namespace, Name, Key string }

func (p *parser) parsePeers(in []*v1alpha1.BGPPeer) {
	seen := map[string]Ref{} // session key -> first peer
	// link-local address -> first peer: the speaker (gobgp's events) tells
	// sessions apart by address alone, without the interface.
	type onIface struct {
		ref   Ref
		iface string
	}
	linkLocal := map[netip.Addr]onIface{}
	for _, o := range in {
		r := refOf(KindBGPPeer, &o.ObjectMeta)
		if !p.checkName(r) || !p.unique(r, p.peers) {
			continue
		}
		n := len(p.errs)
		peer := p.parsePeer(r, &o.Spec)
		if p.failed(n) {
			continue
		}
		if prev, dup := seen[peer.sessionKey()]; dup {
			e := p.fail(r, "spec", "same session as %s (peer address, port, myASN and node selectors)", prev)
			e.Related = []Ref{prev}
			continue
		}
		if prev, ok := linkLocal[peer.Address]; ok && prev.iface != peer.Interface {
			e := p.fail(r, "spec.peerAddress", "%s on interface %s is also the peer address of %s, on interface %s: "+
				"a link-local router address may serve one interface only", peer.Address, peer.Interface, prev.ref, prev.iface)
			e.Related = []Ref{prev.ref}
			continue
		}
		if peer.Interface != "" {
			linkLocal[peer.Address] = onIface{r, peer.Interface}
		}
		seen[peer.sessionKey()] = r
		p.cfg.BGPPeers = append(p.cfg.BGPPeers, peer)
	}
}

// sessionKey is equal for two peers that would open the same session
// from the same nodes.
func (b *BGPPeer) sessionKey() string {
	return fmt.Sprintf("%s|%d|%d|%s", b.Address.WithZone(b.Interface), b.Port, b.MyASN, b.NodeSelectors.key())
}

func (p *parser) parsePeer(r Ref, s *v1alpha1.BGPPeerSpec) BGPPeer {
	b := BGPPeer{
		Namespace:       r.Namespace,
		Name:            r.Name,
		MyASN:           p.asn(r, "spec.myASN", s.MyASN),
		Port:            cmpOr(s.PeerPort, DefaultPeerPort),
		EBGPMultiHop:    s.EBGPMultiHop,
		GracefulRestart: s.EnableGracefulRestart,
		NodeSelectors:   p.selectors(r, "spec.nodeSelectors", s.NodeSelectors),
	}
	b.PeerASN, b.DynamicASN = p.peerASN(r, s, b.MyASN)
	b.Address, b.Interface = p.peerAddr(r, s.PeerAddress, s.Interface)
	if s.SourceAddress != "" {
		b.SourceAddress = p.sourceAddr(r, s.SourceAddress, b.Address)
	}
	p.timers(r, s, &b)
	b.PasswordSecret = p.secret(r, s.PasswordSecret)
	b.Families = p.families(r, s.AddressFamilies, b.Address)
	if s.MaxPrefixes < 0 {
		p.fail(r, "spec.maxPrefixes", "%d is negative; want at least 1 (or unset for the default)", s.MaxPrefixes)
	} else {
		b.MaxPrefixes = uint32(s.MaxPrefixes)
	}
	if s.BFD != nil {
		b.BFD = p.bfd(r, s.BFD, s.EBGPMultiHop)
	}
	return b
}

// bfd checks a BGPPeer's bfd block and applies its defaults.
func (p *parser) bfd(r Ref, s *v1alpha1.BFDSpec, ebgpMultiHop bool) *BFD {
	b := &BFD{Passive: s.Passive, Multihop: ebgpMultiHop}
	if s.Multihop != nil {
		b.Multihop = *s.Multihop
	}
	b.ReceiveInterval = p.bfdInterval(r, "spec.bfd.receiveInterval", s.ReceiveInterval)
	b.TransmitInterval = p.bfdInterval(r, "spec.bfd.transmitInterval", s.TransmitInterval)
	b.DetectMultiplier = DefaultBFDDetectMult
	if m := s.DetectMultiplier; m != nil {
		if *m < 2 || *m > 255 {
			p.fail(r, "spec.bfd.detectMultiplier", "%d: want 2 to 255", *m)
		} else {
			b.DetectMultiplier = uint8(*m)
		}
	}
	switch ttl := s.MinimumTTL; {
	case ttl != nil && !b.Multihop:
		p.fail(r, "spec.bfd.minimumTTL", "only for multihop BFD (single hop always requires TTL 255); set multihop or ebgpMultiHop")
	case ttl != nil && (*ttl < 1 || *ttl > 255):
		p.fail(r, "spec.bfd.minimumTTL", "%d: want 1 to 255", *ttl)
	case ttl != nil:
		b.MinimumTTL = uint8(*ttl)
	case b.Multihop:
		b.MinimumTTL = DefaultBFDMinimumTTL
	}
	return b
}

// bfdInterval reads an interval in milliseconds, default 300.
func (p *parser) bfdInterval(r Ref, path string, ms *int32) time.Duration {
	if ms == nil {
		return DefaultBFDInterval
	}
	if *ms < minBFDInterval || *ms > maxBFDInterval {
		p.fail(r, path, "%d: want %d to %d (milliseconds)", *ms, minBFDInterval, maxBFDInterval)
		return DefaultBFDInterval
	}
	return time.Duration(*ms) * time.Millisecond
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (p *parser) asn(r Ref, path string, v int64) uint32 {
	if v < 0 || v > math.MaxUint32 {
		p.fail(r, path, "ASN %d out of range; want 1 to 4294967295", v)
		return 0
	}
	asn := uint32(v)
	switch asn {
	case 0:
		p.fail(r, path, "ASN 0 is reserved; want 1 to 4294967295")
	case asTrans:
		p.fail(r, path, "ASN 23456 is AS_TRANS, a placeholder for 4-byte ASNs, not a real ASN")
	}
	return asn
}

// peerASN reads the router's ASN: spec.peerASN, or with spec.dynamicASN
// none (external: the speaker takes it from the router's OPEN) or myASN
// (internal).
func (p *parser) peerASN(r Ref, s *v1alpha1.BGPPeerSpec, my uint32) (uint32, v1alpha1.DynamicASN) {
	switch d := s.DynamicASN; {
	case d == "" && s.PeerASN == 0:
		p.fail(r, "spec.peerASN", "missing; set the router's ASN, or dynamicASN (internal or external)")
	case d == "":
		return p.asn(r, "spec.peerASN", s.PeerASN), ""
	case s.PeerASN != 0:
		p.fail(r, "spec.dynamicASN", "%q next to peerASN %d: set one of them", d, s.PeerASN)
	case d == v1alpha1.DynamicASNInternal:
		return my, d
	case d == v1alpha1.DynamicASNExternal:
		return 0, d
	default:
		p.fail(r, "spec.dynamicASN", "%q: want internal or external", d)
	}
	return 0, ""
}

// addr parses a unicast address without zone.
func (p *parser) addr(r Ref, path, s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		p.fail(r, path, "%q is not an IP address", s)
	case a.Zone() != "":
		p.fail(r, path, "%q: addresses with a zone are not supported", s)
	case a.Is4In6():
		p.fail(r, path, "%q is IPv4-mapped IPv6; write it as %s", s, a.Unmap())
	case a.IsUnspecified() || a.IsMulticast():
		p.fail(r, path, "%q is not a unicast address", s)
	default:
		return a
	}
	return netip.Addr{}
}

// peerAddr parses the peer address and the interface towards it: a
// link-local IPv6 address needs one, from the interface field or from a
// zone ("fe80::1%eth1"), and no other address takes one (the kernel
// routes it).
func (p *parser) peerAddr(r Ref, s, iface string) (netip.Addr, string) {
	const path, ipath = "spec.peerAddress", "spec.interface"
	host, zone, zoned := strings.Cut(s, "%")
	a := p.addr(r, path, host)
	switch {
	case !a.IsValid():
		return a, ""
	case zoned && zone == "":
		p.fail(r, path, "%q: empty zone; want the node's interface after %%, as in fe80::1%%eth1", s)
	case zoned && iface != "" && zone != iface:
		p.fail(r, ipath, "%q, but peerAddress %q names interface %q", iface, s, zone)
	case !isLinkLocal6(a) && zoned:
		p.fail(r, path, "%q: a zone is only for a link-local IPv6 address (fe80::/10)", s)
	case !isLinkLocal6(a) && iface != "":
		p.fail(r, ipath, "%q: only for a link-local IPv6 peerAddress (fe80::/10); the kernel routes %s", iface, a)
	case isLinkLocal6(a) && iface == "" && zone == "":
		p.fail(r, path, "%q is link-local: name the node's interface towards the router in spec.interface (or write %s%%eth1)", s, a)
	case iface == "":
		p.checkInterface(r, path, zone)
		return a, zone
	default:
		p.checkInterface(r, ipath, iface)
		return a, iface
	}
	return a, ""
}

// isLinkLocal6 reports whether a is a link-local IPv6 address, which is
// only meaningful with an interface.
func isLinkLocal6(a netip.Addr) bool { return a.Is6() && a.IsLinkLocalUnicast() }

// checkInterface refuses what cannot be a Linux interface name.
func (p *parser) checkInterface(r Ref, path, name string) {
	switch {
	case len(name) > 15:
		p.fail(r, path, "interface %q is longer than 15 characters, too long for a Linux interface name", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/%: \t\n"):
		p.fail(r, path, "%q is not an interface name", name)
	}
}

func (p *parser) sourceAddr(r Ref, s string, peer netip.Addr) netip.Addr {
	const path = "spec.sourceAddress"
	a := p.addr(r, path, s)
	switch {
	case !a.IsValid() || !peer.IsValid():
		return a
	case a.Is4() != peer.Is4():
		p.fail(r, path, "%s and the peer address %s are of different IP families", a, peer)
	case isLinkLocal6(peer) && !isLinkLocal6(a):
		p.fail(r, path, "%s: the peer address %s is link-local, so the source must be the node's link-local address on the interface", a, peer)
	case !isLinkLocal6(peer) && isLinkLocal6(a):
		p.fail(r, path, "%s is link-local but the peer address %s is not", a, peer)
	default:
		return a
	}
	return netip.Addr{}
}

// timers sets the hold, keepalive and connect times of b, with defaults.
func (p *parser) timers(r Ref, s *v1alpha1.BGPPeerSpec, b *BGPPeer) {
	b.HoldTime = durationOr(s.HoldTime, DefaultHoldTime)
	holdOK := p.checkHold(r, b.HoldTime)
	b.KeepaliveTime = durationOr(s.KeepaliveTime, (b.HoldTime / 3).Truncate(time.Second))
	if s.KeepaliveTime != nil && p.wholeSeconds(r, "spec.keepaliveTime", b.KeepaliveTime) && holdOK {
		p.checkKeepalive(r, b.KeepaliveTime, b.HoldTime)
	}
	b.ConnectTime = durationOr(s.ConnectTime, DefaultConnectTime)
	if p.wholeSeconds(r, "spec.connectTime", b.ConnectTime) && b.ConnectTime == 0 {
		p.fail(r, "spec.connectTime", "must be at least 1s")
	}
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// wholeSeconds refuses negative durations and fractions of a second: BGP
// timers are carried and run in seconds.
func (p *parser) wholeSeconds(r Ref, path string, d time.Duration) bool {
	switch {
	case d < 0:
		p.fail(r, path, "%s is negative", d)
	case d%time.Second != 0:
		p.fail(r, path, "%s is not a whole number of seconds", d)
	default:
		return true
	}
	return false
}

func (p *parser) checkHold(r Ref, hold time.Duration) bool {
	const path = "spec.holdTime"
	if !p.wholeSeconds(r, path, hold) {
		return false
	}
	if hold != 0 && (hold < 3*time.Second || hold > maxHoldTime) {
		p.fail(r, path, "%s: want 0 (no hold timer) or 3s to 65535s", hold)
		return false
	}
	return true
}

func (p *parser) checkKeepalive(r Ref, keepalive, hold time.Duration) {
	const path = "spec.keepaliveTime"
	switch {
	case keepalive > hold:
		p.fail(r, path, "%s exceeds the hold time %s", keepalive, hold)
	case keepalive == 0 && hold != 0:
		p.fail(r, path, "0 with a hold time of %s would let the session expire; want 1s to %s", hold, hold)
	}
}

func (p *parser) secret(r Ref, s *v1alpha1.SecretKeyRef) *SecretRef {
	if s == nil {
		return nil
	}
	const path = "spec.passwordSecret"
	ref := &SecretRef{Namespace: p.passwordNS, Name: s.Name, Key: cmpOr(s.Key, DefaultPasswordKey)}
	if s.Namespace != "" && s.Namespace != p.passwordNS {
		p.fail(r, path+".namespace", "%q: BGP password Secrets must be in namespace %q, the only one where the speakers may read Secrets",
			s.Namespace, p.passwordNS)
	}
	if s.Name == "" {
		p.fail(r, path+".name", "must name a Secret")
	} else if len(validation.IsDNS1123Subdomain(s.Name)) > 0 {
		p.fail(r, path+".name", "%q is not a Secret name (an RFC 1123 subdomain)", s.Name)
	}
	if len(validation.IsConfigMapKey(ref.Key)) > 0 {
		p.fail(r, path+".key", "%q is not a Secret key", ref.Key)
	}
	return ref
}

// families checks the address families, or defaults to the peer's own.
func (p *parser) families(r Ref, in []v1alpha1.AddressFamily, peer netip.Addr) []v1alpha1.AddressFamily {
	if len(in) == 0 {
		if peer.Is6() {
			return []v1alpha1.AddressFamily{v1alpha1.IPv6Unicast}
		}
		return []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast}
	}
	var out []v1alpha1.AddressFamily
	for i, f := range in {
		switch {
		case f != v1alpha1.IPv4Unicast && f != v1alpha1.IPv6Unicast:
			p.fail(r, field("spec.addressFamilies", i), "%q is not a family: want %s or %s", f, v1alpha1.IPv4Unicast, v1alpha1.IPv6Unicast)
		case slices.Contains(out, f):
			p.fail(r, field("spec.addressFamilies", i), "%s is listed twice", f)
		default:
			out = append(out, f)
		}
	}
	slices.Sort(out) // "IPv4Unicast" < "IPv6Unicast"
	return out
}
