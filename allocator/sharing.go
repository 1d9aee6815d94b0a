package allocator

import (
	"fmt"
	"slices"
)

// shareInfo is what a Service with a sharing key brings to a shared address.
type shareInfo struct {
	key   string
	ports []Port
}

func newShareInfo(key string, ports []Port) *shareInfo {
	if key == "" {
		return nil
	}
	return &shareInfo{key: key, ports: slices.Clone(ports)}
}

func (s *shareInfo) equal(o *shareInfo) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.key == o.key && slices.Equal(s.ports, o.ports)
}

// holders records who holds which address.
//
// Invariant: all holders of one address have the same non-empty sharing
// key and pairwise distinct ports, or there is a single holder.
type holders struct {
	byAddr  map[ip128]*service   // every held address -> first holder
	shared  map[ip128][]*service // addresses with 2+ holders, by key
	byKey   map[string][]ip128   // sharing key -> its addresses, sorted
	orphans map[ip128]struct{}   // held addresses outside every pool
}

func newHolders() holders {
	return holders{
		byAddr:  make(map[ip128]*service),
		shared:  make(map[ip128][]*service),
		byKey:   make(map[string][]ip128),
		orphans: make(map[ip128]struct{}),
	}
}

// of returns the holders of x, sorted by key.
func (h *holders) of(x ip128) []*service {
	if len(h.shared) > 0 {
		if l := h.shared[x]; l != nil {
			return l
		}
	}
	if s := h.byAddr[x]; s != nil {
		return []*service{s}
	}
	return nil
}

// add records s as a holder of x and reports whether it is the first.
func (h *holders) add(x ip128, s *service) bool {
	first := h.byAddr[x]
	switch {
	case first == nil:
		h.byAddr[x] = s
		if s.share != nil {
			h.byKey[s.share.key] = insertSorted(h.byKey[s.share.key], x)
		}
		return true
	case first == s:
		return false
	}
	l := h.shared[x] // first != s: x is (or becomes) shared
	if l == nil {
		l = []*service{first}
	}
	i, found := slices.BinarySearchFunc(l, s, func(a, b *service) int { return a.key.compare(b.key) })
	if !found {
		l = slices.Insert(l, i, s)
	}
	h.shared[x] = l
	h.byAddr[x] = l[0]
	return false
}

// remove drops s as a holder of x and reports whether x is now free.
func (h *holders) remove(x ip128, s *service) bool {
	var l []*service
	if len(h.shared) > 0 {
		l = h.shared[x]
	}
	if l == nil {
		if h.byAddr[x] != s {
			return false
		}
		delete(h.byAddr, x)
		if s.share != nil {
			h.byKey[s.share.key] = deleteSorted(h.byKey[s.share.key], x)
			if len(h.byKey[s.share.key]) == 0 {
				delete(h.byKey, s.share.key)
			}
		}
		return true
	}
	l = slices.DeleteFunc(slices.Clone(l), func(o *service) bool { return o == s })
	h.byAddr[x] = l[0]
	if len(l) == 1 {
		delete(h.shared, x)
	} else {
		h.shared[x] = l
	}
	return false
}

func insertSorted(l []ip128, x ip128) []ip128 {
	i, found := slices.BinarySearchFunc(l, x, ip128.cmp)
	if found {
		return l
	}
	return slices.Insert(l, i, x)
}

func deleteSorted(l []ip128, x ip128) []ip128 {
	i, found := slices.BinarySearchFunc(l, x, ip128.cmp)
	if !found {
		return l
	}
	return slices.Delete(l, i, i+1)
}

// canJoin checks that a Service key with sharing info sh may hold x next
// to its current holders (other than itself). The error names the first
// holder in the way.
func (h *holders) canJoin(x ip128, key ServiceKey, sh *shareInfo) error {
	for _, o := range h.of(x) {
		if o.key == key {
			continue
		}
		if err := compatible(x, sh, o); err != nil {
			return err
		}
	}
	return nil
}

// compatible checks that sh may share x with holder o.
func compatible(x ip128, sh *shareInfo, o *service) error {
	switch {
	case sh == nil || o.share == nil:
		return fmt.Errorf("%s is held by %s: %w", x, o.key, ErrAddressInUse)
	case sh.key != o.share.key:
		return fmt.Errorf("%s is held by %s with sharing key %q, not %q: %w",
			x, o.key, o.share.key, sh.key, ErrSharingConflict)
	}
	for _, p := range sh.ports {
		if slices.Contains(o.share.ports, p) {
			return fmt.Errorf("%s is held by %s also on port %s: %w", x, o.key, p, ErrSharingConflict)
		}
	}
	return nil
}
