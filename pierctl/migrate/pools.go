package migrate

import (
	"math"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/api/v1alpha1"
)

func (c *converter) pool(u *unstructured.Unstructured, r reporter) {
	var s mlPoolSpec
	if !c.decode(u, r, &s) {
		return
	}
	out := v1alpha1.IPAddressPool{
		TypeMeta:   typeMeta("IPAddressPool"),
		ObjectMeta: c.meta(u, r),
		Spec: v1alpha1.IPAddressPoolSpec{
			Addresses:     addresses(r, s.Addresses),
			AutoAssign:    s.AutoAssign,
			AvoidBuggyIPs: s.AvoidBuggyIPs,
		},
	}
	if sa := s.ServiceAllocation; sa != nil {
		c.hasAlloc = true
		out.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
			Namespaces:         sa.Namespaces,
			NamespaceSelectors: sa.NamespaceSelectors,
			ServiceSelectors:   sa.ServiceSelectors,
		}
		if sa.Priority < 0 || sa.Priority > math.MaxInt32 {
			r.drop("spec.serviceAllocation.priority", "%d is out of range, dropped", sa.Priority)
		} else {
			out.Spec.ServiceAllocation.Priority = int32(sa.Priority)
		}
	}
	c.res.Objects.Pools = append(c.res.Objects.Pools, out)
}

// addresses carries the entries over; a CIDR with host bits set, which
// MetalLB masks silently and Pier refuses, is written masked.
func addresses(r reporter, in []string) []string {
	out := make([]string, len(in))
	for i, a := range in {
		out[i] = a
		p, err := netip.ParsePrefix(strings.TrimSpace(a))
		if err == nil && p.Masked() != p {
			out[i] = p.Masked().String()
			r.note(fieldIndex("spec.addresses", i), "%q has host bits set, which MetalLB ignores: written as %s", a, out[i])
		}
	}
	return out
}

// renumberPriorities keeps MetalLB's pool order in Pier. MetalLB tries the
// pools with a serviceAllocation that match a Service first, by priority
// with 0 (unset) last, then the pools without one; Pier tries lower
// numbers first, 0 first of all. When no pool has a serviceAllocation the
// order is the same (all 0) and nothing changes.
func (c *converter) renumberPriorities() {
	if !c.hasAlloc {
		return
	}
	var highest int32
	for _, p := range c.res.Objects.Pools {
		if sa := p.Spec.ServiceAllocation; sa != nil {
			highest = max(highest, sa.Priority)
		}
	}
	unset, none := highest+1, highest+2
	for i := range c.res.Objects.Pools {
		p := &c.res.Objects.Pools[i]
		r := reporter{kind: "IPAddressPool", namespace: c.opts.MetalLBNamespace, name: p.Name, out: &c.res.Findings}
		switch sa := p.Spec.ServiceAllocation; {
		case sa == nil:
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: none}
			r.note("spec.serviceAllocation.priority", "set to %d: MetalLB tries pools without a serviceAllocation after those with one; Pier tries lower numbers first", none)
		case sa.Priority == 0:
			sa.Priority = unset
			r.note("spec.serviceAllocation.priority", "set to %d: MetalLB tries a pool without a priority after those with one; Pier tries 0 first", unset)
		}
	}
}
