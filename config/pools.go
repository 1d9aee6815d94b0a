package config

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// parsePools parses the pools (sorted by namespace and name), refuses
// duplicate names and overlaps, and fills p.cfg.Pools and PoolLabels.
func (p *parser) parsePools(in []*v1alpha1.IPAddressPool) {
	p.poolRefs = map[string]Ref{}
	var all []entry
	for _, o := range in {
		r := refOf(KindIPAddressPool, &o.ObjectMeta)
		if !p.checkName(r) || !p.unique(r, p.poolRefs) {
			continue
		}
		p.cfg.PoolLabels[r.Name] = labelsOf(o.Labels)
		pool, entries := p.parsePool(r, o)
		p.entries[r.Name] = entries
		all = append(all, entries...)
		if pool != nil {
			p.cfg.Pools = append(p.cfg.Pools, *pool)
		}
	}
	p.overlaps(all)
	p.cfg.Pools = slices.DeleteFunc(p.cfg.Pools, func(pool allocator.Pool) bool { return p.hasErrors(p.poolRefs[pool.Name]) })
	slices.SortFunc(p.cfg.Pools, func(a, b allocator.Pool) int { return cmp.Compare(a.Name, b.Name) })
}

// hasErrors reports whether object r is at fault in an error so far.
func (p *parser) hasErrors(r Ref) bool {
	return slices.ContainsFunc(p.errs, func(e *Error) bool { return e.ref() == r })
}

// unique records r in seen by name, or reports it as a duplicate.
func (p *parser) unique(r Ref, seen map[string]Ref) bool {
	if prev, dup := seen[r.Name]; dup {
		e := p.fail(r, "metadata.name", "%s already uses the name %q", prev, r.Name)
		e.Related = []Ref{prev}
		return false
	}
	seen[r.Name] = r
	return true
}

func labelsOf(l map[string]string) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return maps.Clone(l)
}

// parsePool returns the pool, or nil when it has errors, and its valid
// address entries.
func (p *parser) parsePool(r Ref, o *v1alpha1.IPAddressPool) (*allocator.Pool, []entry) {
	n := len(p.errs)
	pool := allocator.Pool{
		Name:              r.Name,
		DisableAutoAssign: o.Spec.AutoAssign != nil && !*o.Spec.AutoAssign,
		AvoidBuggyIPs:     o.Spec.AvoidBuggyIPs,
	}
	entries := p.addresses(r, o.Spec.Addresses, &pool)
	if sa := o.Spec.ServiceAllocation; sa != nil {
		p.serviceAllocation(r, sa, &pool)
	}
	if p.failed(n) {
		return nil, entries
	}
	// The allocator is the final judge of one pool; overlaps between pools
	// are checked (and attributed) by p.overlaps.
	if _, err := allocator.New(allocator.Options{Pools: []allocator.Pool{pool}}); err != nil {
		p.fail(r, "spec", "refused by the allocator: %v", err)
		return nil, entries
	}
	return &pool, entries
}

// addresses parses spec.addresses into pool and returns the valid entries.
func (p *parser) addresses(r Ref, addrs []string, pool *allocator.Pool) []entry {
	if len(addrs) == 0 {
		p.fail(r, "spec.addresses", "must list at least one CIDR or range")
		return nil
	}
	var out []entry
	for i, s := range addrs {
		e, err := parseEntry(s)
		if err != nil {
			p.fail(r, field("spec.addresses", i), "%v", err)
			continue
		}
		e.pool, e.index = r, i
		out = append(out, e)
		if e.prefix.IsValid() {
			pool.Prefixes = append(pool.Prefixes, e.prefix)
		} else {
			pool.Ranges = append(pool.Ranges, allocator.Range{First: e.first, Last: e.last})
		}
	}
	return out
}

// serviceAllocation parses spec.serviceAllocation into pool.
func (p *parser) serviceAllocation(r Ref, sa *v1alpha1.ServiceAllocation, pool *allocator.Pool) {
	const path = "spec.serviceAllocation"
	if sa.Priority < 0 {
		p.fail(r, path+".priority", "%d is negative; want 0 or more (lower is tried first)", sa.Priority)
	}
	pool.Priority = int(sa.Priority)
	for i, ns := range sa.Namespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			p.fail(r, field(path+".namespaces", i), "%q is not a namespace name (an RFC 1123 label)", ns)
			continue
		}
		pool.Namespaces = append(pool.Namespaces, ns)
	}
	pool.NamespaceSelectors = p.poolSelectors(r, path+".namespaceSelectors", sa.NamespaceSelectors)
	pool.ServiceSelectors = p.poolSelectors(r, path+".serviceSelectors", sa.ServiceSelectors)
}

// overlaps reports every entry that overlaps an earlier-starting one, in
// the same pool or another. Entries are swept in address order, keeping
// the one that reaches furthest, so the cost is O(n log n).
func (p *parser) overlaps(all []entry) {
	if len(all) == 0 {
		return
	}
	slices.SortStableFunc(all, func(a, b entry) int { return a.first.Compare(b.first) })
	reach := all[0]
	for _, e := range all[1:] {
		if e.first.Compare(reach.last) <= 0 {
			p.overlap(reach, e)
		}
		if e.last.Compare(reach.last) > 0 {
			reach = e
		}
	}
}

// overlap reports a and b, attributed to the later of the two in object
// order and naming the other.
func (p *parser) overlap(a, b entry) {
	if b.before(a) {
		a, b = b, a
	}
	other := fmt.Sprintf("%s %s", a.pool, field("spec.addresses", a.index))
	if a.pool == b.pool {
		other = field("spec.addresses", a.index)
	}
	e := p.fail(b.pool, field("spec.addresses", b.index), "%s overlaps %s (%s)", b.text, other, a.text)
	if a.pool != b.pool {
		e.Related = []Ref{a.pool}
	}
}
