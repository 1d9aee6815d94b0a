package config

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func TestPeerErrors(t *testing.T) {
	const B = KindBGPPeer
	mod := func(name, addr string, f func(*v1alpha1.BGPPeerSpec)) v1alpha1.BGPPeer {
		p := peer(name, addr)
		f(&p.Spec)
		return p
	}
	peers := func(ps ...v1alpha1.BGPPeer) Objects { return Objects{BGPPeers: ps} }
	runErrorCases(t, []errorCase{
		{name: "minimal v4 and v6", objs: peers(peer("a", "192.0.2.1"), peer("b", "2001:db8::1"))},
		{name: "asn", objs: peers(mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.MyASN, s.PeerASN = 0, 23456 })),
			want: []*Error{
				perr(B, "a", "spec.myASN", "ASN 0 is reserved; want 1 to 4294967295"),
				perr(B, "a", "spec.peerASN", "ASN 23456 is AS_TRANS, a placeholder for 4-byte ASNs, not a real ASN"),
			}},
		{name: "dynamic asn", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, v1alpha1.DynamicASNInternal }),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, v1alpha1.DynamicASNExternal }),
			mod("c", "192.0.2.3", func(s *v1alpha1.BGPPeerSpec) { s.DynamicASN = v1alpha1.DynamicASNExternal }),
			mod("d", "192.0.2.4", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 0 }),
			mod("e", "192.0.2.5", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "confederation" }),
		),
			want: []*Error{
				perr(B, "c", "spec.dynamicASN", `"external" next to peerASN 64513: set one of them`),
				perr(B, "d", "spec.peerASN", "missing; set the router's ASN, or dynamicASN (internal or external)"),
				perr(B, "e", "spec.dynamicASN", `"confederation": want internal or external`),
			}},
		{name: "4-byte asn", objs: peers(mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.MyASN, s.PeerASN = 4200000000, 4294967295 }))},
		{name: "addresses", objs: peers(
			peer("a", "192.0.2.300"), peer("b", "fe80::1"), peer("c", "::ffff:192.0.2.1"), peer("d", "0.0.0.0"), peer("e", "ff02::1"),
		),
			want: []*Error{
				perr(B, "a", "spec.peerAddress", `"192.0.2.300" is not an IP address`),
				perr(B, "b", "spec.peerAddress", `"fe80::1" is link-local: name the node's interface towards the router in spec.interface (or write fe80::1%eth1)`),
				perr(B, "c", "spec.peerAddress", `"::ffff:192.0.2.1" is IPv4-mapped IPv6; write it as 192.0.2.1`),
				perr(B, "d", "spec.peerAddress", `"0.0.0.0" is not a unicast address`),
				perr(B, "e", "spec.peerAddress", `"ff02::1" is not a unicast address`),
			}},
		{name: "link-local", objs: peers(
			peer("a", "fe80::1%eth1"),
			mod("b", "fe80::2", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "eth1" }),
			mod("c", "fe80::3%eth1", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "eth1" }),
			mod("d", "fe80::4%eth1", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "eth2" }),
			peer("e", "2001:db8::1%eth1"),
			mod("f", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "eth1" }),
			peer("g", "fe80::7%"),
			mod("h", "fe80::8", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "a-very-long-interface" }),
			peer("i", "fe80::9%a/b"),
			mod("j", "169.254.0.1", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "eth1" }),
		),
			want: []*Error{
				perr(B, "d", "spec.interface", `"eth2", but peerAddress "fe80::4%eth1" names interface "eth1"`),
				perr(B, "e", "spec.peerAddress", `"2001:db8::1%eth1": a zone is only for a link-local IPv6 address (fe80::/10)`),
				perr(B, "f", "spec.interface", `"eth1": only for a link-local IPv6 peerAddress (fe80::/10); the kernel routes 192.0.2.1`),
				perr(B, "g", "spec.peerAddress", `"fe80::7%": empty zone; want the node's interface after %, as in fe80::1%eth1`),
				perr(B, "h", "spec.interface", `interface "a-very-long-interface" is longer than 15 characters, too long for a Linux interface name`),
				perr(B, "i", "spec.peerAddress", `"a/b" is not an interface name`),
				perr(B, "j", "spec.interface", `"eth1": only for a link-local IPv6 peerAddress (fe80::/10); the kernel routes 169.254.0.1`),
			}},
		{name: "same link-local address on two interfaces", objs: peers(peer("a", "fe80::1%eth1"), peer("b", "fe80::1%eth2")),
			want: []*Error{
				perr(B, "b", "spec.peerAddress", "fe80::1 on interface eth2 is also the peer address of BGPPeer pier-system/a, on interface eth1: "+
					"a link-local router address may serve one interface only", ref(B, "a")),
			}},
		{name: "same link-local session twice", objs: peers(
			peer("a", "fe80::1%eth1"), mod("b", "fe80::1", func(s *v1alpha1.BGPPeerSpec) { s.Interface = "eth1" })),
			want: []*Error{
				perr(B, "b", "spec", "same session as BGPPeer pier-system/a (peer address, port, myASN and node selectors)", ref(B, "a")),
			}},
		{name: "link-local source address", objs: peers(
			mod("a", "fe80::1%eth1", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "fe80::2" }),
			mod("b", "fe80::1%eth2", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::2" }),
			mod("c", "2001:db8::1", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "fe80::2" }),
			mod("d", "fe80::1%eth3", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "fe80::2%eth3" }),
		),
			want: []*Error{
				perr(B, "b", "spec.sourceAddress", "2001:db8::2: the peer address fe80::1 is link-local, so the source must be the node's link-local address on the interface"),
				perr(B, "c", "spec.sourceAddress", "fe80::2 is link-local but the peer address 2001:db8::1 is not"),
				perr(B, "d", "spec.sourceAddress", `"fe80::2%eth3": addresses with a zone are not supported`),
			}},
		{name: "source address", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::2" }),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "x" }),
			mod("c", "2001:db8::1", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::2" }),
		),
			want: []*Error{
				perr(B, "a", "spec.sourceAddress", "2001:db8::2 and the peer address 192.0.2.1 are of different IP families"),
				perr(B, "b", "spec.sourceAddress", `"x" is not an IP address`),
			}},
		{name: "timers", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur(2*time.Second), dur(time.Second) }),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur(30*time.Second), dur(40*time.Second) }),
			mod("c", "192.0.2.3", func(s *v1alpha1.BGPPeerSpec) {
				s.HoldTime, s.KeepaliveTime = dur(1500*time.Millisecond), dur(-time.Second)
			}),
			mod("d", "192.0.2.4", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur(0), dur(10*time.Second) }),
			mod("e", "192.0.2.5", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur(9*time.Second), dur(0) }),
			mod("f", "192.0.2.6", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.ConnectTime = dur(70000*time.Second), dur(0) }),
			mod("g", "192.0.2.7", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur(0), dur(0) }),
		),
			want: []*Error{
				perr(B, "a", "spec.holdTime", "2s: want 0 (no hold timer) or 3s to 65535s"),
				perr(B, "b", "spec.keepaliveTime", "40s exceeds the hold time 30s"),
				perr(B, "c", "spec.holdTime", "1.5s is not a whole number of seconds"),
				perr(B, "c", "spec.keepaliveTime", "-1s is negative"),
				perr(B, "d", "spec.keepaliveTime", "10s exceeds the hold time 0s"),
				perr(B, "e", "spec.keepaliveTime", "0 with a hold time of 9s would let the session expire; want 1s to 9s"),
				perr(B, "f", "spec.holdTime", "19h26m40s: want 0 (no hold timer) or 3s to 65535s"),
				perr(B, "f", "spec.connectTime", "must be at least 1s"),
			}},
		{name: "max prefixes", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.MaxPrefixes = -1 }),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) { s.MaxPrefixes = 5 }),
		),
			want: []*Error{perr(B, "a", "spec.maxPrefixes", "-1 is negative; want at least 1 (or unset for the default)")}},
		{name: "bfd", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) {
				s.BFD = &v1alpha1.BFDSpec{ReceiveInterval: ptr[int32](9), TransmitInterval: ptr[int32](60001), DetectMultiplier: ptr[int32](1)}
			}),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSpec{MinimumTTL: ptr[int32](250)} }),
			mod("c", "192.0.2.3", func(s *v1alpha1.BGPPeerSpec) {
				s.BFD = &v1alpha1.BFDSpec{Multihop: ptr(true), MinimumTTL: ptr[int32](256), DetectMultiplier: ptr[int32](256)}
			}),
			mod("d", "192.0.2.4", func(s *v1alpha1.BGPPeerSpec) {
				s.EBGPMultiHop = true
				s.BFD = &v1alpha1.BFDSpec{MinimumTTL: ptr[int32](0), ReceiveInterval: ptr[int32](10), TransmitInterval: ptr[int32](60000)}
			}),
			mod("e", "192.0.2.5", func(s *v1alpha1.BGPPeerSpec) {
				s.EBGPMultiHop = true
				s.BFD = &v1alpha1.BFDSpec{Multihop: ptr(false), MinimumTTL: ptr[int32](200)}
			}),
			mod("f", "192.0.2.6", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSpec{} }),
		),
			want: []*Error{
				perr(B, "a", "spec.bfd.receiveInterval", "9: want 10 to 60000 (milliseconds)"),
				perr(B, "a", "spec.bfd.transmitInterval", "60001: want 10 to 60000 (milliseconds)"),
				perr(B, "a", "spec.bfd.detectMultiplier", "1: want 2 to 255"),
				perr(B, "b", "spec.bfd.minimumTTL", "only for multihop BFD (single hop always requires TTL 255); set multihop or ebgpMultiHop"),
				perr(B, "c", "spec.bfd.detectMultiplier", "256: want 2 to 255"),
				perr(B, "c", "spec.bfd.minimumTTL", "256: want 1 to 255"),
				perr(B, "d", "spec.bfd.minimumTTL", "0: want 1 to 255"),
				perr(B, "e", "spec.bfd.minimumTTL", "only for multihop BFD (single hop always requires TTL 255); set multihop or ebgpMultiHop"),
			}},
		{name: "password secret", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecret = &v1alpha1.SecretKeyRef{} }),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecret = &v1alpha1.SecretKeyRef{Name: "Bad_Name", Key: "a/b"} }),
		),
			want: []*Error{
				perr(B, "a", "spec.passwordSecret.name", "must name a Secret"),
				perr(B, "b", "spec.passwordSecret.name", `"Bad_Name" is not a Secret name (an RFC 1123 subdomain)`),
				perr(B, "b", "spec.passwordSecret.key", `"a/b" is not a Secret key`),
			}},
		// The speakers read Secrets in the namespace of BGP passwords only:
		// a Secret named elsewhere would never be read.
		{name: "password secret in the passwords namespace", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) {
				s.PasswordSecret = &v1alpha1.SecretKeyRef{Name: "r1", Namespace: DefaultPasswordNamespace}
			}),
		)},
		{name: "password secret in another namespace", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecret = &v1alpha1.SecretKeyRef{Name: "r1", Namespace: ns} }),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) {
				s.PasswordSecret = &v1alpha1.SecretKeyRef{Name: "r2", Namespace: "Not_A_Namespace"}
			}),
		),
			want: []*Error{
				perr(B, "a", "spec.passwordSecret.namespace", `"pier-system": BGP password Secrets must be in namespace "pier-bgp-passwords", the only one where the speakers may read Secrets`),
				perr(B, "b", "spec.passwordSecret.namespace", `"Not_A_Namespace": BGP password Secrets must be in namespace "pier-bgp-passwords", the only one where the speakers may read Secrets`),
			}},
		{name: "families", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) {
				s.AddressFamilies = []v1alpha1.AddressFamily{"IPv6Unicast", "IPv4Unicast"} // extended next hop: allowed
			}),
			mod("b", "192.0.2.2", func(s *v1alpha1.BGPPeerSpec) {
				s.AddressFamilies = []v1alpha1.AddressFamily{"IPv4Unicast", "L2VPN", "IPv4Unicast"}
			}),
		),
			want: []*Error{
				perr(B, "b", "spec.addressFamilies[1]", `"L2VPN" is not a family: want IPv4Unicast or IPv6Unicast`),
				perr(B, "b", "spec.addressFamilies[2]", "IPv4Unicast is listed twice"),
			}},
		{name: "duplicate session", objs: peers(
			mod("a", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) {
				s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}, {}}
			}),
			mod("b", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.PeerPort, s.PeerASN = 179, 65000 }),
			mod("c", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.PeerPort = 1179 }),
			mod("d", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) { s.MyASN = 64600 }),
			mod("e", "192.0.2.1", func(s *v1alpha1.BGPPeerSpec) {
				s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}
			}),
		),
			want: []*Error{perr(B, "b", "spec", "same session as BGPPeer pier-system/a (peer address, port, myASN and node selectors)", ref(B, "a"))}},
		{name: "duplicate name", objs: peers(peer("a", "192.0.2.1"), peer("a", "192.0.2.2")),
			want: []*Error{perr(B, "a", "metadata.name", `BGPPeer pier-system/a already uses the name "a"`, ref(B, "a"))}},
	})
}

// TestLinkLocalPeer: the interface of a link-local peer comes from the
// interface field or the address's zone, and the address keeps no zone.
func TestLinkLocalPeer(t *testing.T) {
	for _, tc := range []struct {
		name, addr, iface, source string
		want                      BGPPeer
	}{
		{name: "zone", addr: "fe80::1%eth1", want: BGPPeer{Address: netip.MustParseAddr("fe80::1"), Interface: "eth1"}},
		{name: "interface field", addr: "fe80::1", iface: "bond0.100",
			want: BGPPeer{Address: netip.MustParseAddr("fe80::1"), Interface: "bond0.100"}},
		{name: "both, same", addr: "fe80::1%eth1", iface: "eth1", source: "fe80::2",
			want: BGPPeer{Address: netip.MustParseAddr("fe80::1"), Interface: "eth1", SourceAddress: netip.MustParseAddr("fe80::2")}},
		{name: "global address", addr: "2001:db8::1", want: BGPPeer{Address: netip.MustParseAddr("2001:db8::1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer("a", tc.addr)
			p.Spec.Interface, p.Spec.SourceAddress = tc.iface, tc.source
			cfg, err := Parse(Objects{BGPPeers: []v1alpha1.BGPPeer{p}})
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.BGPPeers[0]
			got = BGPPeer{Address: got.Address, Interface: got.Interface, SourceAddress: got.SourceAddress}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("peer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPeerBFD checks the parsed bfd block: defaults, multihop following
// ebgpMultiHop unless set, the minimum TTL only for multihop.
func TestPeerBFD(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec v1alpha1.BGPPeerSpec
		want *BFD
	}{
		{name: "absent", want: nil},
		{name: "empty block: defaults", spec: v1alpha1.BGPPeerSpec{BFD: &v1alpha1.BFDSpec{}},
			want: &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}},
		{name: "set", spec: v1alpha1.BGPPeerSpec{BFD: &v1alpha1.BFDSpec{ReceiveInterval: ptr[int32](50), TransmitInterval: ptr[int32](1000),
			DetectMultiplier: ptr[int32](5), Passive: true}},
			want: &BFD{ReceiveInterval: 50 * time.Millisecond, TransmitInterval: time.Second, DetectMultiplier: 5, Passive: true}},
		{name: "multihop follows ebgpMultiHop", spec: v1alpha1.BGPPeerSpec{EBGPMultiHop: true, BFD: &v1alpha1.BFDSpec{}},
			want: &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3, Multihop: true, MinimumTTL: 254}},
		{name: "single hop despite ebgpMultiHop", spec: v1alpha1.BGPPeerSpec{EBGPMultiHop: true, BFD: &v1alpha1.BFDSpec{Multihop: ptr(false)}},
			want: &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}},
		{name: "multihop with minimum TTL", spec: v1alpha1.BGPPeerSpec{BFD: &v1alpha1.BFDSpec{Multihop: ptr(true), MinimumTTL: ptr[int32](250)}},
			want: &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3, Multihop: true, MinimumTTL: 250}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer("a", "192.0.2.1")
			tc.spec.MyASN, tc.spec.PeerASN, tc.spec.PeerAddress = p.Spec.MyASN, p.Spec.PeerASN, p.Spec.PeerAddress
			p.Spec = tc.spec
			cfg, err := Parse(Objects{BGPPeers: []v1alpha1.BGPPeer{p}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg.BGPPeers[0].BFD); diff != "" {
				t.Errorf("BFD (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPasswordNamespace: Objects.PasswordNamespace, when set, is where
// password Secrets are read and the only namespace a BGPPeer may name.
func TestPasswordNamespace(t *testing.T) {
	withSecret := func(name, namespace string) v1alpha1.BGPPeer {
		p := peer(name, "192.0.2.1")
		p.Spec.PasswordSecret = &v1alpha1.SecretKeyRef{Name: name, Namespace: namespace}
		if name == "b" {
			p.Spec.PeerAddress = "192.0.2.2"
		}
		return p
	}
	for _, tc := range []struct {
		name       string
		configured string
		peers      []v1alpha1.BGPPeer
		want       map[string]*SecretRef
		wantErr    []*Error
	}{
		{name: "default", peers: []v1alpha1.BGPPeer{withSecret("a", "")},
			want: map[string]*SecretRef{"a": {Namespace: "pier-bgp-passwords", Name: "a", Key: "password"}}},
		{name: "configured", configured: "site-bgp", peers: []v1alpha1.BGPPeer{withSecret("a", ""), withSecret("b", "site-bgp")},
			want: map[string]*SecretRef{
				"a": {Namespace: "site-bgp", Name: "a", Key: "password"},
				"b": {Namespace: "site-bgp", Name: "b", Key: "password"},
			}},
		{name: "configured, default named", configured: "site-bgp", peers: []v1alpha1.BGPPeer{withSecret("a", "pier-bgp-passwords")},
			want: map[string]*SecretRef{},
			wantErr: []*Error{perr(KindBGPPeer, "a", "spec.passwordSecret.namespace",
				`"pier-bgp-passwords": BGP password Secrets must be in namespace "site-bgp", the only one where the speakers may read Secrets`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(Objects{BGPPeers: tc.peers, PasswordNamespace: tc.configured})
			if diff := cmp.Diff(tc.wantErr, Errors(err)); diff != "" {
				t.Errorf("Parse errors (-want +got):\n%s", diff)
			}
			got := map[string]*SecretRef{}
			for _, p := range cfg.BGPPeers {
				got[p.Name] = p.PasswordSecret
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("password Secrets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBGPAdvertisementErrors(t *testing.T) {
	const A = KindBGPAdvertisement
	base := func(advs ...v1alpha1.BGPAdvertisement) Objects {
		return Objects{
			Pools:             []v1alpha1.IPAddressPool{pool("cidr", "203.0.113.0/26", "2001:db8:1::/120"), pool("range", "198.51.100.200-198.51.100.250")},
			BGPPeers:          []v1alpha1.BGPPeer{peer("r1", "192.0.2.1")},
			BGPAdvertisements: advs,
		}
	}
	runErrorCases(t, []errorCase{
		{name: "defaults", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{}))},
		{name: "aggregation at the limit", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			AggregationLength: ptr[int32](26), AggregationLengthV6: ptr[int32](120),
		}))},
		{name: "aggregation too short", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			AggregationLength: ptr[int32](24), AggregationLengthV6: ptr[int32](64),
		})),
			want: []*Error{
				perr(A, "a", "spec.aggregationLength", `24 is shorter than the prefix length of "203.0.113.0/26" (IPAddressPool pier-system/cidr spec.addresses[0]): want 26 or more`, ref(KindIPAddressPool, "cidr")),
				perr(A, "a", "spec.aggregationLength", `24 is shorter than /26, the smallest prefix covering "198.51.100.200-198.51.100.250" (IPAddressPool pier-system/range spec.addresses[0]): want 26 or more`, ref(KindIPAddressPool, "range")),
				perr(A, "a", "spec.aggregationLengthV6", `64 is shorter than the prefix length of "2001:db8:1::/120" (IPAddressPool pier-system/cidr spec.addresses[1]): want 120 or more`, ref(KindIPAddressPool, "cidr")),
			}},
		{name: "aggregation only checked on selected pools", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			AggregationLength: ptr[int32](26), AggregationLengthV6: ptr[int32](64), IPAddressPools: []string{"range"},
		}))},
		{name: "aggregation out of range", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			AggregationLength: ptr[int32](33), AggregationLengthV6: ptr[int32](-1),
		})),
			want: []*Error{
				perr(A, "a", "spec.aggregationLength", "33 is out of range: want 0 to 32"),
				perr(A, "a", "spec.aggregationLengthV6", "-1 is out of range: want 0 to 128"),
			}},
		{name: "references", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{"cidr", "nope"}, Peers: []string{"r1", "r9"},
		})),
			want: []*Error{
				perr(A, "a", "spec.ipAddressPools[1]", `IPAddressPool "nope" does not exist`, ref(KindIPAddressPool, "nope")),
				perr(A, "a", "spec.peers[1]", `BGPPeer "r9" does not exist`, ref(KindBGPPeer, "r9")),
			}},
		{name: "communities", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			Communities: []string{"65000:100", "no-export", "65536:1", "large:1:2", "large:1:2:4294967296", "nope"},
		})),
			want: []*Error{
				perr(A, "a", "spec.communities[2]", `community "65536:1": "65536" is not a number from 0 to 65535`),
				perr(A, "a", "spec.communities[3]", `"large:1:2" is not a community: want "65000:100", "large:65000:1:2" or a well-known name such as "no-export"`),
				perr(A, "a", "spec.communities[4]", `large community "large:1:2:4294967296": "4294967296" is not a number from 0 to 4294967295`),
				perr(A, "a", "spec.communities[5]", `"nope" is not a community: want "65000:100", "large:65000:1:2" or a well-known name such as "no-export"`),
			}},
		{name: "selectors", objs: base(bgpAdv("a", v1alpha1.BGPAdvertisementSpec{
			NodeSelectors:          []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Exists", Values: []string{"v"}}}}},
			ServiceSelectors:       []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}}},
			IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"k": "bad value!"}}},
		})),
			want: []*Error{
				perr(A, "a", "spec.ipAddressPoolSelectors[0]", `invalid label selector: values[0][k]: Invalid value: "bad value!": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`),
				perr(A, "a", "spec.nodeSelectors[0]", `invalid label selector: values: Invalid value: ["v"]: values set must be empty for exists and does not exist`),
				perr(A, "a", "spec.serviceSelectors[0]", `invalid label selector: "Near" is not a valid label selector operator`),
			}},
	})
}

// A dynamic ASN leaves the router's ASN to the speaker (external) or makes
// it this node's own (internal).
func TestDynamicASN(t *testing.T) {
	in := []v1alpha1.BGPPeer{peer("int", "192.0.2.1"), peer("ext", "192.0.2.2"), peer("fixed", "192.0.2.3")}
	in[0].Spec.PeerASN, in[0].Spec.DynamicASN = 0, v1alpha1.DynamicASNInternal
	in[1].Spec.PeerASN, in[1].Spec.DynamicASN = 0, v1alpha1.DynamicASNExternal
	cfg, err := Parse(Objects{BGPPeers: in})
	if err != nil {
		t.Fatal(err)
	}
	type asns struct {
		Name       string
		My, Peer   uint32
		DynamicASN v1alpha1.DynamicASN
	}
	var got []asns
	for _, p := range cfg.BGPPeers {
		got = append(got, asns{p.Name, p.MyASN, p.PeerASN, p.DynamicASN})
	}
	want := []asns{ // sorted by name
		{"ext", 64512, 0, v1alpha1.DynamicASNExternal},
		{"fixed", 64512, 64513, ""},
		{"int", 64512, 64512, v1alpha1.DynamicASNInternal},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("peers' ASNs (-want +got):\n%s", diff)
	}
}
