package l2

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// family is an address family; it picks the protocol (ARP or NDP).
type family uint8

const (
	ipv4 family = iota
	ipv6
)

func (f family) String() string {
	if f == ipv6 {
		return "ipv6"
	}
	return "ipv4"
}

func familyOf(a netip.Addr) family {
	if a.Is6() {
		return ipv6
	}
	return ipv4
}

// linkKey names one responder: an interface and a family.
type linkKey struct {
	iface string
	fam   family
}

// addrSet is a set of addresses.
type addrSet map[netip.Addr]struct{}

func (s addrSet) sorted() []netip.Addr {
	out := make([]netip.Addr, 0, len(s))
	for a := range s {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// check validates one announcement and returns it in canonical form
// (IPv4-mapped IPv6 unmapped, zone dropped).
func check(an Announcement) (Announcement, error) {
	a := an.Addr.Unmap().WithZone("")
	an.Addr = a
	switch {
	case !a.IsValid():
		return an, fmt.Errorf("announce %s on %s: no address: %w", an.Addr, an.Iface, ErrInvalid)
	case an.Iface == "" || len(an.Iface) > 15 || strings.ContainsAny(an.Iface, "/ \t\n"):
		return an, fmt.Errorf("announce %s on %q: bad interface name: %w", a, an.Iface, ErrInvalid)
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return an, fmt.Errorf("announce %s on %s: not a unicast address: %w", a, an.Iface, ErrInvalid)
	}
	return an, nil
}

// group validates desired and groups it by responder. Invalid entries are
// left out and reported; duplicates are merged.
func group(desired []Announcement) (map[linkKey]addrSet, error) {
	want := make(map[linkKey]addrSet)
	var errs []error
	for _, an := range desired {
		an, err := check(an)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k := linkKey{an.Iface, familyOf(an.Addr)}
		if want[k] == nil {
			want[k] = make(addrSet)
		}
		want[k][an.Addr] = struct{}{}
	}
	return want, errors.Join(errs...)
}

// change is what one responder must do to go from its current set to the
// desired one; both lists are sorted.
type change struct {
	add, remove []netip.Addr
}

func (c change) empty() bool { return len(c.add) == 0 && len(c.remove) == 0 }

func diff(cur, want addrSet) change {
	var c change
	for a := range want {
		if _, ok := cur[a]; !ok {
			c.add = append(c.add, a)
		}
	}
	for a := range cur {
		if _, ok := want[a]; !ok {
			c.remove = append(c.remove, a)
		}
	}
	slices.SortFunc(c.add, netip.Addr.Compare)
	slices.SortFunc(c.remove, netip.Addr.Compare)
	return c
}
