package allocator

import "testing"

func TestSelector(t *testing.T) {
	prod := map[string]string{"env": "prod", "tier": "edge"}
	tests := []struct {
		name string
		sel  Selector
		lbls map[string]string
		want bool
	}{
		{"empty matches all", Selector{}, nil, true},
		{"matchLabels", Selector{MatchLabels: map[string]string{"env": "prod"}}, prod, true},
		{"matchLabels wrong value", Selector{MatchLabels: map[string]string{"env": "dev"}}, prod, false},
		{"matchLabels missing", Selector{MatchLabels: map[string]string{"x": "y"}}, prod, false},
		{"In", sel(Requirement{"env", In, []string{"dev", "prod"}}), prod, true},
		{"In missing key", sel(Requirement{"x", In, []string{"prod"}}), prod, false},
		{"NotIn", sel(Requirement{"env", NotIn, []string{"dev"}}), prod, true},
		{"NotIn hit", sel(Requirement{"env", NotIn, []string{"prod"}}), prod, false},
		{"NotIn missing key", sel(Requirement{"x", NotIn, []string{"prod"}}), prod, true},
		{"Exists", sel(Requirement{"tier", Exists, nil}), prod, true},
		{"Exists missing", sel(Requirement{"x", Exists, nil}), prod, false},
		{"DoesNotExist", sel(Requirement{"x", DoesNotExist, nil}), prod, true},
		{"DoesNotExist present", sel(Requirement{"env", DoesNotExist, nil}), prod, false},
		{"all must hold", Selector{MatchLabels: map[string]string{"env": "prod"},
			MatchExpressions: []Requirement{{"tier", NotIn, []string{"edge"}}}}, prod, false},
	}
	for _, tt := range tests {
		if got := tt.sel.Matches(tt.lbls); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
		if err := tt.sel.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", tt.name, err)
		}
	}
}

func sel(r Requirement) Selector { return Selector{MatchExpressions: []Requirement{r}} }

func TestSelectorValidate(t *testing.T) {
	bad := []Selector{
		{MatchLabels: map[string]string{"": "x"}},
		sel(Requirement{"", Exists, nil}),
		sel(Requirement{"k", In, nil}),
		sel(Requirement{"k", NotIn, nil}),
		sel(Requirement{"k", Exists, []string{"v"}}),
		sel(Requirement{"k", DoesNotExist, []string{"v"}}),
		sel(Requirement{"k", "Gt", []string{"1"}}),
	}
	for i, s := range bad {
		if s.Validate() == nil {
			t.Errorf("%d: Validate(%+v) = nil, want error", i, s)
		}
	}
}

func TestEligibility(t *testing.T) {
	envProd := []Selector{{MatchLabels: map[string]string{"env": "prod"}}}
	tests := []struct {
		name string
		pool Pool
		ns   string
		nsL  map[string]string
		svcL map[string]string
		want bool
	}{
		{"no rules", Pool{}, "x", nil, nil, true},
		{"namespace listed", Pool{Namespaces: []string{"x"}}, "x", nil, nil, true},
		{"namespace not listed", Pool{Namespaces: []string{"y"}}, "x", nil, nil, false},
		{"namespace selector", Pool{NamespaceSelectors: envProd}, "x", labels("env", "prod"), nil, true},
		{"names or selector", Pool{Namespaces: []string{"x"}, NamespaceSelectors: envProd}, "x", nil, nil, true},
		{"selector miss", Pool{NamespaceSelectors: envProd}, "x", labels("env", "dev"), nil, false},
		{"service selector", Pool{ServiceSelectors: envProd}, "x", nil, labels("env", "prod"), true},
		{"service selector miss", Pool{ServiceSelectors: envProd}, "x", labels("env", "prod"), nil, false},
		{"both needed", Pool{Namespaces: []string{"x"}, ServiceSelectors: envProd}, "y", nil, labels("env", "prod"), false},
	}
	for _, tt := range tests {
		if got := tt.pool.eligible(tt.ns, tt.nsL, tt.svcL); got != tt.want {
			t.Errorf("%s: eligible = %v, want %v", tt.name, got, tt.want)
		}
	}
}
