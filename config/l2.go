package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// L2Advertisement announces pools with ARP (IPv4) and NDP (IPv6).
type L2Advertisement struct {
	Namespace, Name string
	// Pools are the names of the pools announced: those listed, plus those
	// the pool selectors match, or every pool when the object has neither.
	// Sorted, no duplicates.
	Pools []string
	// NodeSelectors pick the nodes that may answer; empty means all.
	NodeSelectors Selectors
	// Interfaces limit where nodes answer; empty means any interface whose
	// subnet holds the address.
	Interfaces []string
	// ServiceSelectors pick the Services announced; empty means all.
	ServiceSelectors Selectors
	// RequireReadyEndpoints: announce a Service only while it has a ready
	// endpoint somewhere in the cluster.
	RequireReadyEndpoints bool
	// Balanced: the owners of the addresses this advertisement selects
	// are balanced over the nodes (spec.spread Balanced) instead of
	// picked by hash alone.
	Balanced bool
}

func (p *parser) parseL2(o *v1alpha1.L2Advertisement) {
	r := refOf(KindL2Advertisement, &o.ObjectMeta)
	if !p.checkName(r) {
		return
	}
	m := p.mark()
	adv := L2Advertisement{
		Namespace:             r.Namespace,
		Name:                  r.Name,
		Pools:                 p.resolvePools(r, o.Spec.IPAddressPools, o.Spec.IPAddressPoolSelectors),
		NodeSelectors:         p.selectors(r, "spec.nodeSelectors", o.Spec.NodeSelectors),
		ServiceSelectors:      p.selectors(r, "spec.serviceSelectors", o.Spec.ServiceSelectors),
		RequireReadyEndpoints: o.Spec.RequireReadyEndpoints,
		Balanced:              o.Spec.Spread == v1alpha1.L2SpreadBalanced,
	}
	switch o.Spec.Spread {
	case "", v1alpha1.L2SpreadHash, v1alpha1.L2SpreadBalanced:
	default:
		p.fail(r, "spec.spread", "spread %q is not one of %s, %s", o.Spec.Spread, v1alpha1.L2SpreadHash, v1alpha1.L2SpreadBalanced)
	}
	for i, name := range o.Spec.Interfaces {
		if err := checkInterface(name); err != nil {
			p.fail(r, field("spec.interfaces", i), "%v", err)
			continue
		}
		adv.Interfaces = append(adv.Interfaces, name)
	}
	if p.faulty(m) {
		return
	}
	p.cfg.L2Advertisements = append(p.cfg.L2Advertisements, adv)
}

// resolvePools returns the pools an advertisement selects: the named ones
// and the ones its selectors match, or all when it has neither. A name
// that matches no pool is reported, naming the pool as a related party,
// and dropped. Pools left out of the Config for their own faults are still
// named: their addresses stay announced while Services hold them.
func (p *parser) resolvePools(r Ref, names []string, sels []metav1.LabelSelector) []string {
	if len(names) == 0 && len(sels) == 0 {
		return sortedKeys(p.poolRefs)
	}
	var out []string
	for i, name := range names {
		pool, ok := p.poolRefs[name]
		if !ok {
			e := p.fail(r, field("spec.ipAddressPools", i), "IPAddressPool %q does not exist", name)
			e.Related = []Ref{{Kind: KindIPAddressPool, Namespace: r.Namespace, Name: name}}
			p.dangling++
			continue
		}
		out = append(out, pool.Name)
	}
	out = append(out, p.matchPools(p.selectors(r, "spec.ipAddressPoolSelectors", sels))...)
	slices.Sort(out)
	return slices.Compact(out)
}

// checkInterface applies the kernel's rules for a network interface name:
// 1 to 15 bytes, not "." or "..", no '/', ':' or whitespace.
func checkInterface(name string) error {
	switch {
	case name == "" || len(name) > 15:
		return fmt.Errorf("interface name %q must be 1 to 15 bytes long", name)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not an interface name", name)
	case strings.ContainsAny(name, "/:\x00"):
		return fmt.Errorf("interface name %q contains '/', ':' or NUL", name)
	case strings.ContainsFunc(name, unicode.IsSpace):
		return fmt.Errorf("interface name %q contains whitespace", name)
	}
	return nil
}
