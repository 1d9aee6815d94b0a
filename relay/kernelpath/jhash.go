package kernelpath

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Seed is the jhash seed of every Pier relay, so that all nodes agree.
const Seed = 0x50494552

// jhash is the Linux kernel's jhash (Bob Jenkins' lookup3 hashlittle, as
// include/linux/jhash.h has it) on a little-endian machine, which is what
// nft_hash computes over its source registers.
func jhash(k []byte, initval uint32) uint32 {
	a := 0xdeadbeef + uint32(len(k)) + initval
	b, c := a, a
	for len(k) > 12 {
		a += binary.LittleEndian.Uint32(k)
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
		a, b, c = mix(a, b, c)
		k = k[12:]
	}
	if len(k) == 0 {
		return c
	}
	var tail [12]byte
	copy(tail[:], k)
	a += binary.LittleEndian.Uint32(tail[0:])
	b += binary.LittleEndian.Uint32(tail[4:])
	c += binary.LittleEndian.Uint32(tail[8:])
	return final(a, b, c)
}

func mix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

func final(a, b, c uint32) uint32 {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// Hash is the kernel rule's hash of a client: jhash over the registers the
// rule loads, the source address (4 bytes for IPv4, including IPv4-mapped
// IPv6, 16 for IPv6) and, unless addrOnly, the source port in network
// order padded to 4 bytes.
func Hash(client netip.AddrPort, addrOnly bool) uint32 {
	var buf [20]byte
	var n int
	if a := client.Addr().Unmap(); a.Is4() {
		b := a.As4()
		n = copy(buf[:], b[:])
	} else {
		b := a.As16()
		n = copy(buf[:], b[:])
	}
	if !addrOnly {
		binary.BigEndian.PutUint16(buf[n:], client.Port())
		n += 4
	}
	return jhash(buf[:n], Seed)
}

// Bucket maps a hash to one of m buckets the way nft_hash does
// (reciprocal_scale: the high half of hash times m).
func Bucket(hash, m uint32) uint32 {
	return uint32(uint64(hash) * uint64(m) >> 32)
}
