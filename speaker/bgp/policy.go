package bgp

import (
	"context"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Each peer has an export policy accepting the prefixes of two prefix sets
// (gobgp's prefix sets hold one family each); the peer's default export
// action is reject.

func policyName(peer string) string { return "pier-export-" + peer }

func setName(peer string, v6 bool) string {
	if v6 {
		return "pier-" + peer + "-v6"
	}
	return "pier-" + peer + "-v4"
}

func prefixSet(name string, prefixes []netip.Prefix) *api.DefinedSet {
	ds := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name}
	for _, p := range prefixes {
		ds.Prefixes = append(ds.Prefixes, &api.Prefix{
			IpPrefix:      p.String(),
			MaskLengthMin: uint32(p.Bits()),
			MaskLengthMax: uint32(p.Bits()),
		})
	}
	return ds
}

func splitFamilies(prefixes []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

// addPeerPolicy creates the peer's prefix sets holding prefixes and its
// export policy.
func addPeerPolicy(ctx context.Context, s *server.BgpServer, peer string, prefixes []netip.Prefix) error {
	v4, v6 := splitFamilies(prefixes)
	pol := &api.Policy{Name: policyName(peer)}
	for i, set := range []*api.DefinedSet{prefixSet(setName(peer, false), v4), prefixSet(setName(peer, true), v6)} {
		if err := s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return fmt.Errorf("add prefix set %s: %w", set.Name, err)
		}
		pol.Statements = append(pol.Statements, &api.Statement{
			Name:       fmt.Sprintf("%s-%d", pol.Name, i),
			Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: set.Name}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		})
	}
	if err := s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
		return fmt.Errorf("add policy %s: %w", pol.Name, err)
	}
	return nil
}

// deletePeerPolicy removes what addPeerPolicy made; the peer must be gone.
func deletePeerPolicy(ctx context.Context, s *server.BgpServer, peer string) error {
	err := s.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyName(peer)}, All: true})
	if err != nil {
		return fmt.Errorf("delete policy %s: %w", policyName(peer), err)
	}
	for _, v6 := range []bool{false, true} {
		set := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: setName(peer, v6)}
		if err := s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set, All: true}); err != nil {
			return fmt.Errorf("delete prefix set %s: %w", set.Name, err)
		}
	}
	return nil
}

// updatePeerSets adds and removes prefixes in the peer's sets.
func updatePeerSets(ctx context.Context, s *server.BgpServer, peer string, add, del []netip.Prefix) error {
	for _, v6 := range []bool{false, true} {
		a4, a6 := splitFamilies(add)
		d4, d6 := splitFamilies(del)
		a, d := a4, d4
		if v6 {
			a, d = a6, d6
		}
		name := setName(peer, v6)
		if len(d) > 0 {
			err := s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: prefixSet(name, d)})
			if err != nil {
				return fmt.Errorf("remove %d prefixes from %s: %w", len(d), name, err)
			}
		}
		if len(a) > 0 {
			if err := s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: prefixSet(name, a)}); err != nil {
				return fmt.Errorf("add %d prefixes to %s: %w", len(a), name, err)
			}
		}
	}
	return nil
}
