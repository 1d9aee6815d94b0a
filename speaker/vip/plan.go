package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrNotVIP is returned (wrapped) for an address that cannot be a service
// address: invalid, unspecified, loopback, multicast, link-local or zoned.
var ErrNotVIP = errors.New("not a usable service address")

// found describes what the link holds for one address.
type found struct {
	host  bool   // present as /32 or /128
	label string // IPv4 label of the host entry
}

// change is what Set must do on the link.
type change struct {
	add     []netip.Addr // wanted, absent: add and record as ours
	remove  []netip.Addr // ours, no longer wanted
	foreign []netip.Addr // wanted, on the link, not ours: leave alone
}

func (c change) empty() bool { return len(c.add) == 0 && len(c.remove) == 0 }

// checkVIP reports whether a can be put on the link as a service address.
func checkVIP(a netip.Addr) error {
	switch {
	case !a.IsValid(), a.Zone() != "", a.IsUnspecified(), a.IsLoopback(),
		a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsInterfaceLocalMulticast():
		return ErrNotVIP
	}
	return nil
}

// wanted unmaps, deduplicates and sorts addrs, and reports the ones that
// cannot be service addresses.
func wanted(addrs []netip.Addr, link string) ([]netip.Addr, []error) {
	var out []netip.Addr
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		if err := checkVIP(a); err != nil {
			errs = append(errs, fmt.Errorf("add %s on %s: %w", a, link, err))
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), errs
}

// ours reports whether a, recorded as added by us, is still on the link as
// we left it: a host prefix and, for IPv4, our label.
func ours(a netip.Addr, f found, ok bool, label string) bool {
	return ok && f.host && (a.Is6() || f.label == label)
}

// held splits the recorded addresses into those still ours on the link and
// those gone (removed or changed by someone else).
func held(owned []netip.Addr, onLink map[netip.Addr]found, label string) (kept, gone []netip.Addr) {
	for _, a := range owned {
		f, ok := onLink[a]
		if ours(a, f, ok, label) {
			kept = append(kept, a)
		} else {
			gone = append(gone, a)
		}
	}
	return kept, gone
}

// plan compares the wanted addresses with the ones we hold and the link's
// contents. want must come from wanted; owned from held.
func plan(want, owned []netip.Addr, onLink map[netip.Addr]found) change {
	var c change
	for _, a := range owned {
		if !slices.Contains(want, a) {
			c.remove = append(c.remove, a)
		}
	}
	for _, a := range want {
		if slices.Contains(owned, a) {
			continue
		}
		if _, ok := onLink[a]; ok {
			c.foreign = append(c.foreign, a)
		} else {
			c.add = append(c.add, a)
		}
	}
	slices.SortFunc(c.remove, netip.Addr.Compare)
	return c
}
