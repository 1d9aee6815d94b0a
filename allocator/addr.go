package allocator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// Family is an IP family.
type Family uint8

// IP families. The zero Family is invalid.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

func (f Family) valid() bool { return f == IPv4 || f == IPv6 }

// index maps IPv4 to 0 and IPv6 to 1, for per-family arrays.
func (f Family) index() int {
	if f == IPv6 {
		return 1
	}
	return 0
}

func (f Family) other() Family {
	if f == IPv6 {
		return IPv4
	}
	return IPv6
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// ip128 is an address as a 128-bit integer: 16 bytes instead of the 24 of
// netip.Addr, which matters in the maps that hold every assigned address.
// IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). Inputs are
// unmapped and IPv6 pools may not cover ::ffff:0:0/96, so the encoding is
// one-to-one.
type ip128 struct{ hi, lo uint64 }

func ipOf(a netip.Addr) ip128 {
	b := a.As16()
	return ip128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (x ip128) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	a := netip.AddrFrom16(b)
	if x.is4() {
		return a.Unmap()
	}
	return a
}

func (x ip128) String() string { return x.addr().String() }

func (x ip128) is4() bool { return x.hi == 0 && x.lo>>32 == 0xffff }

func (x ip128) family() Family {
	if x.is4() {
		return IPv4
	}
	return IPv6
}

func (x ip128) cmp(y ip128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x ip128) less(y ip128) bool { return x.cmp(y) < 0 }

// next returns x+1, wrapping at the top of the address space.
func (x ip128) next() ip128 {
	x.lo++
	if x.lo == 0 {
		x.hi++
	}
	return x
}

// buggy reports whether x is an IPv4 address ending in .0 or .255.
func (x ip128) buggy() bool {
	last := x.lo & 0xff
	return x.is4() && (last == 0 || last == 0xff)
}

func (x ip128) big() *big.Int {
	b := new(big.Int).SetUint64(x.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(x.lo))
}

// hostMask returns the host bits of a prefix of the given length in
// 128-bit space.
func hostMask(bits int) ip128 {
	host := 128 - bits
	switch {
	case host >= 128:
		return ip128{^uint64(0), ^uint64(0)}
	case host >= 64:
		return ip128{(1 << (host - 64)) - 1, ^uint64(0)}
	}
	return ip128{0, (1 << host) - 1}
}

// normAddr checks an address from a caller and unmaps IPv4-mapped IPv6.
func normAddr(a netip.Addr) (netip.Addr, error) {
	switch {
	case !a.IsValid():
		return a, errors.New("invalid address")
	case a.Zone() != "":
		return a, fmt.Errorf("address %s has a zone", a)
	}
	return a.Unmap(), nil
}
