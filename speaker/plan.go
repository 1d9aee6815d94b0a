package speaker

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
)

// Iface is one of a node's interfaces and the subnets on it.
type Iface struct {
	Name     string         `json:"n"`
	Prefixes []netip.Prefix `json:"p"`
}

// Member is a live speaker and its interfaces, as it gossips them.
type Member struct {
	Name   string
	Ifaces []Iface
}

// Ownership says which node answers for an address, on which interfaces.
// A withheld one (Withheld set, see Target) names the node that would
// answer, which reports why it does not.
type Ownership struct {
	Addr     netip.Addr
	Service  string
	Node     string
	Ifaces   []string
	Withheld string
}

// Plan picks the owner of every target among the live members that the
// target allows and that have an allowed interface whose subnet holds the
// address. Targets no live member can serve are left out. The owner is
// the candidate ranked first for the address (members.Owner), except for
// Balanced targets, whose owners Spread balances over their candidates.
// The plan is sorted as the targets are (compareOwnership).
func Plan(targets []Target, live []Member) []Ownership {
	out := make([]Ownership, 0, len(targets))
	names := make([]string, 0, len(live))    // the candidates of a target
	ifaces := make([][]string, 0, len(live)) // and their serving interfaces
	var balanced []candidates
	for _, t := range targets {
		names, ifaces = names[:0], ifaces[:0]
		for _, m := range live {
			allowed, ok := t.Nodes[m.Name]
			if !ok {
				continue
			}
			if ifs := servingIfaces(m.Ifaces, allowed, t.Addr); len(ifs) > 0 {
				names, ifaces = append(names, m.Name), append(ifaces, ifs)
			}
		}
		if t.Balanced && t.Withheld == "" && len(names) > 0 {
			balanced = append(balanced, candidates{t, slices.Clone(names), slices.Clone(ifaces)})
			continue
		}
		if owner := members.Owner(t.Addr, names); owner != "" {
			out = append(out, Ownership{Addr: t.Addr, Service: t.Service, Node: owner, Ifaces: ifaces[slices.Index(names, owner)], Withheld: t.Withheld})
		}
	}
	if len(balanced) > 0 {
		out = append(out, planBalanced(balanced)...)
		slices.SortFunc(out, compareOwnership)
	}
	return out
}

// candidates are the live nodes that may own a target and their serving
// interfaces.
type candidates struct {
	t      Target
	names  []string
	ifaces [][]string
}

// planBalanced owns the Balanced targets: an address is one unit (the
// Services sharing it must have one owner), and its candidates are the
// nodes every one of its targets allows. Targets sharing an address with
// no common candidate fall back to their own first-ranked candidate.
func planBalanced(cs []candidates) []Ownership {
	byAddr := map[netip.Addr][]string{}
	for _, c := range cs {
		have, seen := byAddr[c.t.Addr]
		if !seen {
			byAddr[c.t.Addr] = c.names
			continue
		}
		byAddr[c.t.Addr] = slices.DeleteFunc(slices.Clone(have), func(n string) bool { return !slices.Contains(c.names, n) })
	}
	for addr, names := range byAddr {
		if len(names) == 0 {
			delete(byAddr, addr)
		}
	}
	owners := Spread(byAddr)
	out := make([]Ownership, 0, len(cs))
	for _, c := range cs {
		owner, ok := owners[c.t.Addr]
		if !ok {
			owner = members.Owner(c.t.Addr, c.names)
		}
		out = append(out, Ownership{Addr: c.t.Addr, Service: c.t.Service, Node: owner, Ifaces: c.ifaces[slices.Index(c.names, owner)]})
	}
	return out
}

// compareOwnership orders as compareTargets: by address, then Service.
func compareOwnership(a, b Ownership) int {
	return cmp.Or(a.Addr.Compare(b.Addr), strings.Compare(a.Service, b.Service))
}

// servingIfaces lists the interfaces (allowed ones, or any when allowed is
// empty) whose subnet holds addr.
func servingIfaces(ifaces []Iface, allowed []string, addr netip.Addr) []string {
	var out []string
	for _, ifc := range ifaces {
		if len(allowed) > 0 && !slices.Contains(allowed, ifc.Name) {
			continue
		}
		for _, p := range ifc.Prefixes {
			if p.Contains(addr) {
				out = append(out, ifc.Name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// Announcements are the L2 announcements of node in a plan (withheld
// ownerships are not announced).
func Announcements(plan []Ownership, node string) []l2.Announcement {
	var out []l2.Announcement
	for _, o := range plan {
		if o.Node != node || o.Withheld != "" {
			continue
		}
		for _, ifc := range o.Ifaces {
			out = append(out, l2.Announcement{Addr: o.Addr, Iface: ifc})
		}
	}
	return out
}

// EncodeIfaces is the member metadata a speaker gossips (memberlist allows
// 512 bytes: a few interfaces with a few subnets each).
func EncodeIfaces(ifaces []Iface) ([]byte, error) {
	b, err := json.Marshal(ifaces)
	if err != nil {
		return nil, err
	}
	if len(b) > 512 {
		return nil, fmt.Errorf("interface metadata is %d bytes, more than memberlist's 512", len(b))
	}
	return b, nil
}

// DecodeIfaces reads another member's metadata; garbage yields none.
func DecodeIfaces(b []byte) []Iface {
	var out []Iface
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}
