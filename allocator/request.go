package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Request is what the caller knows about one Service.
type Request struct {
	Service ServiceKey
	// Policy and Families mirror spec.ipFamilyPolicy and spec.ipFamilies.
	// Families empty: IPv4 first, then IPv6 for dual-stack policies.
	Policy   FamilyPolicy
	Families []Family
	// Addrs are requested addresses, at most one per family. When set
	// they are the whole answer: no other family is added, all of them
	// must succeed whatever the policy, and RequireDualStack needs one of
	// each.
	Addrs []netip.Addr
	// Pool names the pool to use; "" lets the allocator choose.
	Pool string
	// SharingKey and Ports allow sharing an address with other Services
	// that have the same key and none of the same ports.
	SharingKey string
	Ports      []Port
	// What eligibility rules look at.
	NamespaceLabels map[string]string
	ServiceLabels   map[string]string
	// Created is the Service's creation time; when Restore finds two
	// Services on one address, the newer one loses.
	Created time.Time
}

// want is a validated, normalized Request.
type want struct {
	key       ServiceKey
	policy    FamilyPolicy
	pool      string
	nsLabels  map[string]string
	svcLabels map[string]string
	fams      [2]Family // fams[:n], primary first
	n         int
	addrs     [2]ip128 // requested, by Family.index
	asked     uint8    // has4/has6 for addrs
	share     *shareInfo
	created   int64
}

func (w *want) families() []Family { return w.fams[:w.n] }

func (w *want) requested(f Family) (ip128, bool) {
	return w.addrs[f.index()], w.asked&famFlag(f) != 0
}

// normalize fills w from r.
func (w *want) normalize(r *Request) error {
	if r.Service.Name == "" {
		return fmt.Errorf("%w: empty service name", ErrInvalidRequest)
	}
	*w = want{key: r.Service, policy: r.Policy, pool: r.Pool, nsLabels: r.NamespaceLabels,
		svcLabels: r.ServiceLabels, share: newShareInfo(r.SharingKey, r.Ports), created: stamp(r.Created)}
	if err := w.setAddrs(r.Addrs, len(r.Families) == 0); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if err := w.setFamilies(r); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return nil
}

// setAddrs records requested addresses; they set the family order when
// the request gives none.
func (w *want) setAddrs(addrs []netip.Addr, order bool) error {
	for _, a := range addrs {
		a, err := normAddr(a)
		if err != nil {
			return err
		}
		f := familyOf(a)
		if w.asked&famFlag(f) != 0 {
			return fmt.Errorf("two %s addresses requested", f)
		}
		w.asked |= famFlag(f)
		w.addrs[f.index()] = ipOf(a)
		if order {
			w.push(f)
		}
	}
	return nil
}

func (w *want) push(f Family) {
	if w.n == 0 || w.fams[0] != f {
		w.fams[w.n] = f
		w.n++
	}
}

func (w *want) setFamilies(r *Request) error {
	if len(r.Families) > 2 {
		return errors.New("more than two IP families")
	}
	for _, f := range r.Families {
		if !f.valid() || w.n > 0 && w.fams[0] == f {
			return fmt.Errorf("bad IP families %v", r.Families)
		}
		w.push(f)
	}
	if w.n == 0 {
		w.push(IPv4)
	}
	switch {
	case r.Policy == SingleStack:
		w.n = 1
	case r.Policy > RequireDualStack:
		return fmt.Errorf("unknown policy %s", r.Policy)
	case w.n == 1:
		w.push(w.fams[0].other())
	}
	return w.keepRequested(r.Policy)
}

// keepRequested limits the families to the requested addresses, if any.
func (w *want) keepRequested(p FamilyPolicy) error {
	if w.asked == 0 {
		return nil
	}
	var kept [2]Family
	n := 0
	for _, f := range w.families() {
		if w.asked&famFlag(f) != 0 {
			kept[n] = f
			n++
		}
	}
	if n != popcount(w.asked) {
		return fmt.Errorf("requested addresses do not match IP families %v (%s)", slices.Clone(w.families()), p)
	}
	if p == RequireDualStack && n != 2 {
		return fmt.Errorf("%s needs one requested address per family", p)
	}
	w.fams, w.n = kept, n
	return nil
}

func popcount(b uint8) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}
