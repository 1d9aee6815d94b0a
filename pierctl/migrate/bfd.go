package migrate

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// mlBFDSpec is MetalLB's BFDProfile spec (intervals in milliseconds).
type mlBFDSpec struct {
	ReceiveInterval  *int64 `json:"receiveInterval"`
	TransmitInterval *int64 `json:"transmitInterval"`
	DetectMultiplier *int64 `json:"detectMultiplier"`
	EchoInterval     *int64 `json:"echoInterval"`
	EchoMode         bool   `json:"echoMode"`
	PassiveMode      bool   `json:"passiveMode"`
	MinimumTTL       *int64 `json:"minimumTtl"`
}

// bfdProfile reads a BFDProfile into the bfd block the BGPPeers naming it
// get; it makes no object of its own.
func (c *converter) bfdProfile(u *unstructured.Unstructured, r reporter) {
	var s mlBFDSpec
	if !c.decode(u, r, &s) {
		return
	}
	out := &v1alpha1.BFDSpec{Passive: s.PassiveMode}
	out.ReceiveInterval = bfdValue(r, "spec.receiveInterval", s.ReceiveInterval, 10, 60000)
	out.TransmitInterval = bfdValue(r, "spec.transmitInterval", s.TransmitInterval, 10, 60000)
	out.DetectMultiplier = bfdValue(r, "spec.detectMultiplier", s.DetectMultiplier, 2, 255)
	out.MinimumTTL = bfdValue(r, "spec.minimumTtl", s.MinimumTTL, 1, 255)
	if s.EchoMode {
		r.drop("spec.echoMode", "the echo function is not supported (asynchronous mode only), dropped")
	}
	if s.EchoInterval != nil {
		r.drop("spec.echoInterval", "the echo function is not supported, dropped")
	}
	c.bfd[u.GetName()] = out
}

// bfdValue carries a value over if Pier accepts it.
func bfdValue(r reporter, path string, v *int64, lo, hi int64) *int32 {
	if v == nil {
		return nil
	}
	if *v < lo || *v > hi {
		r.drop(path, "%d: want %d to %d; dropped (Pier's default applies)", *v, lo, hi)
		return nil
	}
	n := int32(*v)
	return &n
}

// peerBFD is the bfd block of a peer naming BFDProfile profile.
func (c *converter) peerBFD(r reporter, profile string, multihop bool) *v1alpha1.BFDSpec {
	p, ok := c.bfd[profile]
	if !ok {
		r.drop("spec.bfdProfile", "%q: no such BFDProfile among the converted objects; BFD not enabled", profile)
		return nil
	}
	out := *p
	if out.MinimumTTL != nil && !multihop {
		// As in MetalLB: the minimum TTL applies to multihop sessions.
		r.note("spec.bfdProfile", "%q: minimumTtl applies to multihop sessions only and this peer is single hop; not carried over", profile)
		out.MinimumTTL = nil
	}
	return &out
}
