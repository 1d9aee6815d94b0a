package bgp

import (
	"context"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// gobgp applies per-peer policies only to route-server clients; other
// peers share the global export policy. So each peer has a policy
// "pier-export-<peer>" in the global export list whose statements match the
// peer's own address (a neighbor set: on export gobgp matches the receiving
// peer) and one of its two prefix sets (gobgp's prefix sets hold one family
// each); the global default export action is reject.

const (
	globalTable       = "global"
	importLocalPolicy = "pier-import-local"
)

func exportAssignment(policies ...string) *api.PolicyAssignment {
	pa := &api.PolicyAssignment{Name: globalTable, Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_REJECT}
	for _, p := range policies {
		pa.Policies = append(pa.Policies, &api.Policy{Name: p})
	}
	return pa
}

// rejectByDefault makes gobgp export nothing that no peer policy accepts
// and import nothing at all: a speaker uses no route, so received paths
// never reach gobgp's table (no best-path work, no memory there). gobgp
// still keeps them per peer before this policy runs; Peer.MaxPrefixes
// bounds that.
func rejectByDefault(ctx context.Context, s *server.BgpServer) error {
	if err := s.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: exportAssignment()}); err != nil {
		return fmt.Errorf("set the default export action: %w", err)
	}
	// gobgp runs its own paths through the import policy too: accept them.
	local := &api.Policy{Name: importLocalPolicy, Statements: []*api.Statement{{
		Name:       importLocalPolicy + "-0",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}}}
	if err := s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: local}); err != nil {
		return fmt.Errorf("add policy %s: %w", local.Name, err)
	}
	imp := &api.PolicyAssignment{Name: globalTable, Direction: api.PolicyDirection_IMPORT,
		DefaultAction: api.RouteAction_REJECT, Policies: []*api.Policy{{Name: importLocalPolicy}}}
	if err := s.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: imp}); err != nil {
		return fmt.Errorf("set the default import action: %w", err)
	}
	return nil
}

func neighborSetName(peer string) string { return "pier-" + peer + "-nbr" }

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
// export policy: one statement per family, which sets the peer's next hop
// for that family when it has one (see Peer.ExportNextHop).
//
// local is the session's local address when it is link-local (else zero).
func addPeerPolicy(ctx context.Context, s *server.BgpServer, p *Peer, local netip.Addr, prefixes []netip.Prefix) error {
	v4, v6 := splitFamilies(prefixes)
	nbr := &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: neighborSetName(p.Name),
		List: []string{netip.PrefixFrom(p.Address, p.Address.BitLen()).String()}}
	if err := s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: nbr}); err != nil {
		return fmt.Errorf("add neighbor set %s: %w", nbr.Name, err)
	}
	for _, set := range []*api.DefinedSet{prefixSet(setName(p.Name, false), v4), prefixSet(setName(p.Name, true), v6)} {
		if err := s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return fmt.Errorf("add prefix set %s: %w", set.Name, err)
		}
	}
	pol := exportPolicy(p, local)
	if err := s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
		return fmt.Errorf("add policy %s: %w", pol.Name, err)
	}
	if err := s.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: exportAssignment(pol.Name)}); err != nil {
		return fmt.Errorf("assign policy %s: %w", pol.Name, err)
	}
	return nil
}

// exportPolicy is the peer's export policy. gobgp applies it after its own
// next-hop handling (which puts the session's local address on paths with
// an unspecified next hop), so a next-hop action here has the last word,
// for this peer only.
func exportPolicy(p *Peer, local netip.Addr) *api.Policy {
	pol := &api.Policy{Name: policyName(p.Name)}
	for i, v6 := range []bool{false, true} {
		nh, send := p.ExportNextHop(v6)
		if !send {
			continue
		}
		actions := &api.Actions{RouteAction: api.RouteAction_ACCEPT}
		if !nh.IsValid() && v6 && local.IsValid() {
			// gobgp v3 puts :: on paths to a link-local session (it cannot
			// parse its zoned local address), which routers refuse as a
			// martian: the session's own link-local address is the next
			// hop a router on the link uses (RFC 2545).
			nh = local
		}
		if nh.IsValid() {
			actions.Nexthop = &api.NexthopAction{Address: nh.String()}
		}
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: fmt.Sprintf("%s-%d", pol.Name, i),
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(p.Name)},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: setName(p.Name, v6)},
			},
			Actions: actions,
		})
	}
	return pol
}

// deletePeerPolicy removes what addPeerPolicy made; the peer must be gone.
func deletePeerPolicy(ctx context.Context, s *server.BgpServer, peer string) error {
	err := s.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: exportAssignment(policyName(peer))})
	if err != nil {
		return fmt.Errorf("unassign policy %s: %w", policyName(peer), err)
	}
	err = s.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyName(peer)}, All: true})
	if err != nil {
		return fmt.Errorf("delete policy %s: %w", policyName(peer), err)
	}
	sets := []*api.DefinedSet{
		{DefinedType: api.DefinedType_PREFIX, Name: setName(peer, false)},
		{DefinedType: api.DefinedType_PREFIX, Name: setName(peer, true)},
		{DefinedType: api.DefinedType_NEIGHBOR, Name: neighborSetName(peer)},
	}
	for _, set := range sets {
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
