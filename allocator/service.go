package allocator

import "time"

// service is what the allocator remembers of a Service holding addresses.
// There is one per Service, so it is kept small (80 bytes): an IPv4
// address takes 4 bytes.
type service struct {
	key     ServiceKey
	v6      ip128
	v4      uint32
	flags   uint8 // has4, has6, first6
	share   *shareInfo
	created int64 // UnixNano, saturated; see stamp
}

const (
	has4 uint8 = 1 << iota
	has6
	first6
)

func famFlag(f Family) uint8 {
	if f == IPv6 {
		return has6
	}
	return has4
}

func (s *service) held(f Family) bool { return s.flags&famFlag(f) != 0 }

// addr returns the address of family f; valid if held(f).
func (s *service) addr(f Family) ip128 {
	if f == IPv6 {
		return s.v6
	}
	return ip128{0, 0xffff<<32 | uint64(s.v4)}
}

// holds reports whether s (possibly nil) holds x.
func (s *service) holds(x ip128) bool {
	f := x.family()
	return s != nil && s.held(f) && s.addr(f) == x
}

func (s *service) set(x ip128) {
	f := x.family()
	if f == IPv6 {
		s.v6 = x
	} else {
		s.v4 = uint32(x.lo)
	}
	if s.flags&(has4|has6) == 0 && f == IPv6 {
		s.flags |= first6
	}
	s.flags |= famFlag(f)
}

func (s *service) unset(x ip128) {
	if !s.holds(x) {
		return
	}
	s.flags &^= famFlag(x.family())
	if s.flags&(has4|has6) == 0 {
		s.flags = 0
	}
}

// list returns the held addresses in xs[:n], primary family first.
func (s *service) list() (xs [2]ip128, n int) {
	order := [2]Family{IPv4, IPv6}
	if s.flags&first6 != 0 {
		order = [2]Family{IPv6, IPv4}
	}
	for _, f := range order {
		if s.held(f) {
			xs[n] = s.addr(f)
			n++
		}
	}
	return xs, n
}

// newer reports whether s is newer than o: later creation, then greater
// namespace/name.
func (s *service) newer(o *service) bool {
	if s.created != o.created {
		return s.created > o.created
	}
	return s.key.compare(o.key) > 0
}

var (
	minStamp = time.Unix(0, -1<<63)
	maxStamp = time.Unix(0, 1<<63-1)
)

// stamp converts t to UnixNano, saturating outside 1678-2262 (the zero
// time sorts first).
func stamp(t time.Time) int64 {
	switch {
	case t.Before(minStamp):
		return -1 << 63
	case t.After(maxStamp):
		return 1<<63 - 1
	}
	return t.UnixNano()
}
