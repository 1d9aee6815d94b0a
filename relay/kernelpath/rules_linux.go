package kernelpath

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// family is one address family's layout of the rules.
type family struct {
	name     string // "4" or "6", in object names
	nfproto  byte
	addrLen  uint32
	saddrOff uint32 // offset of the source address in the network header
	daddrOff uint32
	portReg  uint32 // register after the address, for the port
	addrType nftables.SetDatatype
}

var (
	ipv4 = family{"4", unix.NFPROTO_IPV4, 4, 12, 16, unix.NFT_REG32_01, nftables.TypeIPAddr}
	ipv6 = family{"6", unix.NFPROTO_IPV6, 16, 8, 24, unix.NFT_REG32_04, nftables.TypeIP6Addr}
)

// families is the address families a listener takes datagrams of.
func families(a netip.Addr) []family {
	switch {
	case a == netip.IPv6Unspecified():
		return []family{ipv4, ipv6}
	case a.Is4() || a.Is4In6():
		return []family{ipv4}
	default:
		return []family{ipv6}
	}
}

func (f family) mapName(l string) string  { return "m" + f.name + "-" + l }
func (f family) idleName(l string) string { return "idle" + f.name + "-" + l }
func (f family) vipName(l string) string  { return "vip" + f.name + "-" + l }
func listenerChain(l string) string       { return "l-" + l }
func counterName(kind, l string) string   { return kind + "-" + l }
func native32(v uint32) []byte            { return binaryutil.NativeEndian.PutUint32(v) }
func be16(v uint16) []byte                { return binary.BigEndian.AppendUint16(nil, v) }
func cmpEq(reg uint32, data []byte) expr.Any {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: data}
}

// isFamily selects packets of family f.
func isFamily(f family) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmpEq(1, []byte{f.nfproto})}
}

// udpPort selects UDP datagrams to l's port.
func udpPort(l Listener) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq(1, []byte{unix.IPPROTO_UDP}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		cmpEq(1, be16(l.Port)),
	}
}

// localDst selects packets to a local address.
func localDst(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: op, Register: 1, Data: native32(unix.RTN_LOCAL)},
	}
}

// udpTo selects UDP datagrams to l's port and address, of any family
// (every local address for a wildcard).
func udpTo(l Listener) []expr.Any {
	e := udpPort(l)
	if l.Addr.IsUnspecified() {
		return append(e, localDst(expr.CmpOpEq)...)
	}
	f := families(l.Addr)[0]
	e = append(e, isFamily(f)...)
	return append(e,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrOff, Len: f.addrLen},
		cmpEq(1, l.Addr.Unmap().AsSlice()))
}

// toVIPs selects UDP datagrams of family f to l's port and one of its VIPs
// that is not local (a local one is taken by udpTo already).
func toVIPs(f family, l Listener) []expr.Any {
	e := append(isFamily(f), udpPort(l)...)
	e = append(e,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrOff, Len: f.addrLen},
		&expr.Lookup{SourceRegister: 1, SetName: f.vipName(l.Name)})
	return append(e, localDst(expr.CmpOpNeq)...)
}

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

// idleRule gives l's new flows of family f the idle timeout policy.
func idleRule(f family, l Listener) []expr.Any {
	return append(isFamily(f), &expr.Objref{Type: int(nftables.ObjTypeCtTimeout), Name: f.idleName(l.Name)})
}

// refuseRule counts and drops l's new flows beyond max.
func refuseRule(l Listener, max int) []expr.Any {
	return append([]expr.Any{},
		&expr.Connlimit{Count: uint32(max), Flags: connlimitInvert},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName("refused", l.Name)},
		&expr.Verdict{Kind: expr.VerdictDrop})
}

// dnatRule places l's new flows of family f: the hash of the client's
// address (and port) picks a bucket, the map its backend.
func dnatRule(f family, l Listener, o Options) []expr.Any {
	const key = unix.NFT_REG32_00
	e := append(isFamily(f),
		&expr.Payload{DestRegister: key, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrOff, Len: f.addrLen})
	n := f.addrLen
	if !o.KeyByAddressOnly {
		e = append(e, &expr.Payload{DestRegister: f.portReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
		n += 4
	}
	return append(e,
		&expr.Hash{SourceRegister: key, DestRegister: key, Length: n, Modulus: o.TableSize, Seed: Seed, Type: expr.HashTypeJenkins},
		&expr.Lookup{SourceRegister: key, DestRegister: unix.NFT_REG_1, IsDestRegSet: true, SetName: f.mapName(l.Name)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: unix.NFT_REG_3},
		&expr.Bitwise{SourceRegister: unix.NFT_REG_3, DestRegister: unix.NFT_REG_3, Len: 4,
			Mask: native32(^o.CtMark), Xor: native32(o.CtMark)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: unix.NFT_REG_3, SourceRegister: true},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName("new", l.Name)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(f.nfproto),
			RegAddrMin: unix.NFT_REG_1, RegProtoMin: f.portReg, Specified: true})
}

// marked matches packets of the path's flows.
func marked(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(mark), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)},
	}
}

// countRule counts l's packets in one direction (0 original, 1 reply).
func countRule(l Listener, mark uint32, dir byte, counter string) []expr.Any {
	return append(marked(mark),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq(1, []byte{unix.IPPROTO_UDP}),
		&expr.Ct{Key: expr.CtKeyPROTODST, Register: 1, Direction: 0}, cmpEq(1, be16(l.Port)),
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1}, cmpEq(1, []byte{dir}),
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: counterName(counter, l.Name)})
}

// masqRule makes the backend's replies come back through this node.
func masqRule(mark uint32) []expr.Any {
	return append(marked(mark), &expr.Masq{})
}

// connlimitInvert is NFT_CONNLIMIT_F_INV: match when the count is over.
const connlimitInvert = 1
