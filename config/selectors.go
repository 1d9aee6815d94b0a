package config

import (
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/allocator"
)

// Selectors matches when any one of its selectors matches; an empty list
// matches everything (as every "none means all" selector list in the API).
type Selectors []labels.Selector

// Matches reports whether l satisfies one of s, or s is empty.
func (s Selectors) Matches(l labels.Labels) bool {
	if len(s) == 0 {
		return true
	}
	for _, sel := range s {
		if sel.Matches(l) {
			return true
		}
	}
	return false
}

// key is a canonical form of s, equal for selector lists that select the
// same objects in the same way (order and duplicates ignored).
func (s Selectors) key() string {
	parts := make([]string, 0, len(s))
	for _, sel := range s {
		parts = append(parts, sel.String())
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	if slices.Contains(parts, "") { // an empty selector matches everything
		return ""
	}
	return strings.Join(parts, " | ")
}

// selectors converts the label selectors at path of object r; invalid ones
// are reported and left out.
func (p *parser) selectors(r Ref, path string, in []metav1.LabelSelector) Selectors {
	var out Selectors
	for i := range in {
		sel, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			p.fail(r, field(path, i), "invalid label selector: %v", err)
			continue
		}
		out = append(out, sel)
	}
	return out
}

// poolSelectors converts selectors for the allocator, which keeps no
// Kubernetes imports; invalid ones are reported and left out.
func (p *parser) poolSelectors(r Ref, path string, in []metav1.LabelSelector) []allocator.Selector {
	var out []allocator.Selector
	for i := range in {
		if _, err := metav1.LabelSelectorAsSelector(&in[i]); err != nil {
			p.fail(r, field(path, i), "invalid label selector: %v", err)
			continue
		}
		out = append(out, allocatorSelector(in[i]))
	}
	return out
}

func allocatorSelector(in metav1.LabelSelector) allocator.Selector {
	out := allocator.Selector{MatchLabels: maps.Clone(in.MatchLabels)}
	for _, r := range in.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, allocator.Requirement{
			Key:      r.Key,
			Operator: allocator.Operator(r.Operator),
			Values:   slices.Clone(r.Values),
		})
	}
	return out
}

// matchPools returns the names of the pools (by label) that one of sels
// selects.
func (p *parser) matchPools(sels Selectors) []string {
	var out []string
	for _, name := range sortedKeys(p.cfg.PoolLabels) {
		for _, sel := range sels {
			if sel.Matches(labels.Set(p.cfg.PoolLabels[name])) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}
