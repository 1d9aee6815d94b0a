package migrate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// passwordKey is the Secret key MetalLB reads, and Pier's default.
const passwordKey = "password"

func (c *converter) peer(u *unstructured.Unstructured, r reporter) {
	var s mlPeerSpec
	if !c.decode(u, r, &s) || !c.peerConvertible(r, &s) {
		c.skipped[u.GetName()] = true
		return
	}
	spec := v1alpha1.BGPPeerSpec{
		MyASN:                 s.MyASN,
		PeerASN:               s.PeerASN,
		PeerAddress:           s.PeerAddress,
		SourceAddress:         s.SourceAddress,
		HoldTime:              s.HoldTime,
		KeepaliveTime:         s.KeepaliveTime,
		ConnectTime:           s.ConnectTime,
		EBGPMultiHop:          s.EBGPMultiHop,
		EnableGracefulRestart: s.EnableGracefulRestart,
		NodeSelectors:         s.NodeSelectors,
	}
	if s.PeerPort < 0 || s.PeerPort > 65535 {
		r.drop("spec.peerPort", "%d is not a port, dropped (Pier uses 179)", s.PeerPort)
	} else {
		spec.PeerPort = uint16(s.PeerPort)
	}
	if s.DualStackAddressFamily {
		spec.AddressFamilies = []v1alpha1.AddressFamily{v1alpha1.IPv4Unicast, v1alpha1.IPv6Unicast}
	}
	if s.Interface != "" {
		r.drop("spec.interface", "%q: unnumbered BGP is not supported, dropped (the session uses spec.peerAddress)", s.Interface)
	}
	switch {
	case s.DynamicASN != "" && s.PeerASN != 0:
		r.drop("spec.dynamicASN", "%q next to peerASN %d, dropped (the session expects spec.peerASN)", s.DynamicASN, s.PeerASN)
	case s.DynamicASN != "":
		spec.DynamicASN = v1alpha1.DynamicASN(s.DynamicASN)
	}
	if s.RouterID != "" {
		r.drop("spec.routerID", "%q: per-peer router IDs are not supported, dropped (one BGP identifier per node: pier-speaker --router-id, default its IPv4 address)", s.RouterID)
	}
	if s.BFDProfile != "" {
		spec.BFD = c.peerBFD(r, s.BFDProfile, s.EBGPMultiHop)
	}
	spec.PasswordSecret = c.password(u.GetName(), r, &s)
	c.peers[u.GetName()] = true
	c.res.Objects.BGPPeers = append(c.res.Objects.BGPPeers, v1alpha1.BGPPeer{
		TypeMeta: typeMeta("BGPPeer"), ObjectMeta: c.meta(u, r), Spec: spec,
	})
}

// peerConvertible reports the MetalLB peers Pier cannot open at all: no
// address (unnumbered), or in a VRF (a session from the
// default VRF could reach a different router, which is worse than none).
func (c *converter) peerConvertible(r reporter, s *mlPeerSpec) bool {
	switch {
	case s.PeerAddress == "" && s.Interface != "":
		r.drop("spec.interface", "%q: unnumbered BGP (no peerAddress) is not supported; BGPPeer not converted "+
			"(Pier peers over an interface with the router's link-local address: peerAddress fe80::...%%%s)", s.Interface, s.Interface)
	case s.PeerAddress == "":
		r.drop("spec.peerAddress", "missing; BGPPeer not converted")
	case s.VRF != "":
		r.drop("spec.vrf", "%q: VRFs are not supported; BGPPeer not converted (a session from the default VRF could reach another router)", s.VRF)
	default:
		return true
	}
	return false
}

// password returns the Secret reference for the peer: MetalLB's
// passwordSecret, or a new Secret holding the inline password.
func (c *converter) password(peer string, r reporter, s *mlPeerSpec) *v1alpha1.SecretKeyRef {
	ref := s.PasswordSecret
	if ref != nil && ref.Name != "" {
		if s.Password != "" {
			r.drop("spec.password", "set together with spec.passwordSecret (MetalLB refuses both); the Secret is used, the password dropped")
		}
		c.secrets[ref.Name] = true
		from := fmt.Sprintf("%s/%s", cmpOr(ref.Namespace, c.opts.MetalLBNamespace), ref.Name)
		r.note("spec.passwordSecret", "Pier reads Secret %s/%s, key %q: copy Secret %s there", c.opts.PasswordNamespace, ref.Name, passwordKey, from)
		return &v1alpha1.SecretKeyRef{Name: ref.Name, Key: passwordKey}
	}
	if s.Password == "" {
		return nil
	}
	name := c.secretName(peer + "-bgp-password")
	c.res.Secrets = append(c.res.Secrets, corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.opts.PasswordNamespace},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{passwordKey: s.Password},
	})
	r.note("spec.password", "Pier reads passwords only from Secrets: written to Secret %s/%s, key %q (the output holds the password in clear text)", c.opts.PasswordNamespace, name, passwordKey)
	return &v1alpha1.SecretKeyRef{Name: name, Key: passwordKey}
}

// secretName returns base, or base-2, base-3... if taken.
func (c *converter) secretName(base string) string {
	name := base
	for i := 2; c.secrets[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	c.secrets[name] = true
	return name
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
