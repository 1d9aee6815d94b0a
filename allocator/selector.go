package allocator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Operator is the operator of a label selector requirement.
type Operator string

// Label selector operators, with their Kubernetes meaning.
const (
	In           Operator = "In"
	NotIn        Operator = "NotIn"
	Exists       Operator = "Exists"
	DoesNotExist Operator = "DoesNotExist"
)

// Requirement is one match expression: Key Operator Values.
type Requirement struct {
	Key      string
	Operator Operator
	Values   []string
}

// Selector is a label selector with Kubernetes semantics: every
// MatchLabels pair and every MatchExpressions requirement must hold. The
// empty Selector matches everything.
type Selector struct {
	MatchLabels      map[string]string
	MatchExpressions []Requirement
}

// Matches reports whether labels satisfy s.
func (s Selector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

func (r Requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case In:
		return ok && slices.Contains(r.Values, v)
	case NotIn:
		return !ok || !slices.Contains(r.Values, v)
	case Exists:
		return ok
	case DoesNotExist:
		return !ok
	}
	return false
}

// Validate reports a malformed selector.
func (s Selector) Validate() error {
	for k := range s.MatchLabels {
		if k == "" {
			return errors.New("empty label key")
		}
	}
	for _, r := range s.MatchExpressions {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r Requirement) validate() error {
	if r.Key == "" {
		return errors.New("empty label key")
	}
	switch r.Operator {
	case In, NotIn:
		if len(r.Values) == 0 {
			return fmt.Errorf("%s %s needs values", r.Key, r.Operator)
		}
	case Exists, DoesNotExist:
		if len(r.Values) != 0 {
			return fmt.Errorf("%s %s takes no values", r.Key, r.Operator)
		}
	default:
		return fmt.Errorf("%s: unknown operator %q", r.Key, r.Operator)
	}
	return nil
}

// anyMatch reports whether labels match one of sels; no selectors match all.
func anyMatch(sels []Selector, labels map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(labels) {
			return true
		}
	}
	return false
}

func (s Selector) clone() Selector {
	out := Selector{MatchLabels: maps.Clone(s.MatchLabels)}
	for _, r := range s.MatchExpressions {
		r.Values = slices.Clone(r.Values)
		out.MatchExpressions = append(out.MatchExpressions, r)
	}
	return out
}

func cloneSelectors(in []Selector) []Selector {
	if in == nil {
		return nil
	}
	out := make([]Selector, len(in))
	for i, s := range in {
		out[i] = s.clone()
	}
	return out
}
