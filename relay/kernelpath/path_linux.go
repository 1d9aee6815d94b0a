package kernelpath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Path is the kernel data path of one relay: its nftables table.
// Its methods are safe for concurrent use.
type Path struct {
	mu    sync.Mutex // one request at a time on the netlink sockets
	opts  Options
	nft   *nftables.Conn
	ct    *netlink.Handle
	table *nftables.Table
	// installed is what the table holds, by listener name; nil before the
	// first Apply.
	installed map[string]Listener
}

// New validates opts and opens netlink sockets in the calling thread's
// network namespace. It writes nothing until Apply.
func New(opts Options) (*Path, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	nft, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		return nil, fmt.Errorf("kernelpath: nftables: %w", err)
	}
	ct, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		nft.CloseLasting()
		return nil, fmt.Errorf("kernelpath: conntrack: %w", err)
	}
	return &Path{opts: opts, nft: nft, ct: ct,
		table: &nftables.Table{Name: opts.Table, Family: nftables.TableFamilyINet}}, nil
}

// socketBuffer holds a whole table in one transaction: a Maglev map of
// 65,537 elements is about 3 MB of netlink messages, and the kernel takes
// one transaction in one sendmsg, bounded by the socket's send buffer.
const socketBuffer = 32 << 20

// bigBuffers sets the netlink socket's buffers past the system maximum
// (SO_*BUFFORCE, allowed with CAP_NET_ADMIN, which nftables needs anyway).
func bigBuffers(c *mnetlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
	})
	if err := errors.Join(err, serr); err != nil {
		return fmt.Errorf("netlink socket buffers: %w", err)
	}
	return nil
}

// Apply makes the table match ls: the first call and a change of listeners
// write the whole table in one transaction; a change of buckets only
// replaces the map elements that changed. Either way no existing flow
// moves.
func (p *Path) Apply(ls []Listener) error {
	if err := validateListeners(ls, p.opts.TableSize); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.installed != nil && sameListeners(p.installed, ls) {
		return p.update(ls)
	}
	return p.rebuild(ls)
}

func sameListeners(have map[string]Listener, ls []Listener) bool {
	if len(have) != len(ls) {
		return false
	}
	for _, l := range ls {
		h, ok := have[l.Name]
		if !ok || h.Addr != l.Addr || h.Port != l.Port {
			return false
		}
	}
	return true
}

func (p *Path) rebuild(ls []Listener) error {
	if p.installed != nil {
		p.nft.DelTable(p.table)
	}
	if err := p.write(p.nft, ls); err != nil {
		return err
	}
	if err := p.nft.Flush(); err != nil {
		return fmt.Errorf("kernelpath: write table %s: %w", p.opts.Table, err)
	}
	p.remember(ls)
	return nil
}

// tableWriter is the part of *nftables.Conn that queues a whole table, so
// that what a Path writes can be recorded (the golden test).
type tableWriter interface {
	AddTable(*nftables.Table) *nftables.Table
	AddChain(*nftables.Chain) *nftables.Chain
	AddObj(nftables.Obj) nftables.Obj
	AddSet(*nftables.Set, []nftables.SetElement) error
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	AddRule(*nftables.Rule) *nftables.Rule
}

// write queues the whole table for ls on w.
func (p *Path) write(w tableWriter, ls []Listener) error {
	w.AddTable(p.table)
	chains := p.addChains(w)
	for _, l := range ls {
		if err := p.addListener(w, chains, l); err != nil {
			return err
		}
	}
	w.AddRule(&nftables.Rule{Table: p.table, Chain: chains.snat, Exprs: masqRule(p.opts.CtMark)})
	return nil
}

func (p *Path) remember(ls []Listener) {
	p.installed = make(map[string]Listener, len(ls))
	for _, l := range ls {
		l.Buckets, l.VIPs = slices.Clone(l.Buckets), slices.Clone(l.VIPs)
		p.installed[l.Name] = l
	}
}

// dnatPriority places the DNAT chain before kube-proxy's (dstnat, -100),
// so the Relay's addresses are translated to backends rather than to the
// node, and after kube-proxy's pre-DNAT filter (dstnat - 10), so its checks
// still see the address the client sent to.
const dnatPriority = -105

type chains struct{ dnat, count, snat *nftables.Chain }

func (p *Path) addChains(w tableWriter) chains {
	add := func(name string, t nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
		return w.AddChain(&nftables.Chain{Name: name, Table: p.table, Type: t, Hooknum: hook,
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio))})
	}
	return chains{
		dnat:  add("dnat", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, dnatPriority),
		count: add("count", nftables.ChainTypeFilter, nftables.ChainHookForward, 0),
		snat:  add("snat", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 110),
	}
}

// addListener writes l's objects and rules: jumps from the NAT chain to
// l's own chain for its datagrams (to a local address, or to one of its
// VIPs), which sets the idle timeout, refuses flows over the limit and
// places the rest.
func (p *Path) addListener(w tableWriter, c chains, l Listener) error {
	for _, kind := range []string{"in", "out", "new", "refused"} {
		w.AddObj(&nftables.NamedObj{Table: p.table, Name: counterName(kind, l.Name),
			Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
	}
	rule := func(ch *nftables.Chain, e ...expr.Any) {
		w.AddRule(&nftables.Rule{Table: p.table, Chain: ch, Exprs: e})
	}
	own := w.AddChain(&nftables.Chain{Name: listenerChain(l.Name), Table: p.table})
	rule(c.dnat, append(udpTo(l), jump(own.Name))...)
	for _, f := range families(l.Addr) {
		vips := p.vipsOf(f, l)
		if err := w.AddSet(vips, vipElements(f, l.VIPs, nil)); err != nil {
			return fmt.Errorf("kernelpath: set %s: %w", vips.Name, err)
		}
		rule(c.dnat, append(toVIPs(f, l), jump(own.Name))...)
		if p.opts.IdleTimeout > 0 {
			w.AddObj(p.idleObj(f, l))
			rule(own, idleRule(f, l)...)
		}
	}
	if p.opts.MaxFlows > 0 {
		rule(own, refuseRule(l, p.opts.MaxFlows)...)
	}
	for _, f := range families(l.Addr) {
		set := p.mapOf(f, l)
		if err := w.AddSet(set, nil); err != nil {
			return fmt.Errorf("kernelpath: map %s: %w", set.Name, err)
		}
		if err := inChunks(set, changed(f, l.Buckets, nil, true), w.SetAddElements); err != nil {
			return err
		}
		rule(own, dnatRule(f, l, p.opts)...)
	}
	rule(c.count, countRule(l, p.opts.CtMark, 0, "in")...)
	rule(c.count, countRule(l, p.opts.CtMark, 1, "out")...)
	return nil
}

func (p *Path) vipsOf(f family, l Listener) *nftables.Set {
	return &nftables.Set{Table: p.table, Name: f.vipName(l.Name), KeyType: f.addrType}
}

// vipElements are the addresses of family f in vips that are not in old.
func vipElements(f family, vips, old []netip.Addr) []nftables.SetElement {
	var out []nftables.SetElement
	for _, v := range vips {
		if familyOf(v) == f.nfproto && !slices.Contains(old, v) {
			out = append(out, nftables.SetElement{Key: v.Unmap().AsSlice()})
		}
	}
	return out
}

func (p *Path) idleObj(f family, l Listener) *nftables.NamedObj {
	s := uint32(max(1, p.opts.IdleTimeout.Seconds()))
	return &nftables.NamedObj{Table: p.table, Name: f.idleName(l.Name), Type: nftables.ObjTypeCtTimeout,
		Obj: &expr.CtTimeout{L3Proto: uint16(f.nfproto), L4Proto: unix.IPPROTO_UDP,
			Policy: expr.CtStatePolicyTimeout{expr.CtStateUDPUNREPLIED: s, expr.CtStateUDPREPLIED: s}}}
}

func (p *Path) mapOf(f family, l Listener) *nftables.Set {
	return &nftables.Set{Table: p.table, Name: f.mapName(l.Name), IsMap: true,
		KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian,
		DataType: nftables.MustConcatSetType(f.addrType, nftables.TypeInetService)}
}

// chunk is the most elements in one netlink message: the element list is
// one attribute, whose length field has 16 bits (an IPv6 element is about
// 50 bytes).
const chunk = 1000

// inChunks queues elems for set through op, chunk elements per message,
// all in the pending transaction.
func inChunks(set *nftables.Set, elems []nftables.SetElement, op func(*nftables.Set, []nftables.SetElement) error) error {
	for len(elems) > 0 {
		n := min(chunk, len(elems))
		if err := op(set, elems[:n]); err != nil {
			return fmt.Errorf("kernelpath: set %s: %w", set.Name, err)
		}
		elems = elems[n:]
	}
	return nil
}

// changed are the map elements of family f for the buckets of to whose
// backend differs in from (every bucket of to when from is nil), with their
// values when withValues (to add them; deleting needs the keys only).
func changed(f family, to, from []netip.AddrPort, withValues bool) []nftables.SetElement {
	var out []nftables.SetElement
	for i, b := range to {
		if from != nil && from[i] == b || !b.IsValid() || familyOf(b.Addr()) != f.nfproto {
			continue
		}
		e := nftables.SetElement{Key: native32(uint32(i))}
		if withValues {
			e.Val = value(b)
		}
		out = append(out, e)
	}
	return out
}

func familyOf(a netip.Addr) byte {
	if a.Unmap().Is4() {
		return unix.NFPROTO_IPV4
	}
	return unix.NFPROTO_IPV6
}

// value is a map value: the address, then the port in network order padded
// to a register.
func value(b netip.AddrPort) []byte {
	v := b.Addr().Unmap().AsSlice()
	return append(v, byte(b.Port()>>8), byte(b.Port()), 0, 0)
}

func (p *Path) update(ls []Listener) error {
	dirty := false
	for _, l := range ls {
		old := p.installed[l.Name].Buckets
		for _, f := range families(l.Addr) {
			n, err := p.updateVIPs(f, l, p.installed[l.Name].VIPs)
			if err != nil {
				return err
			}
			dirty = dirty || n > 0
			set := p.mapOf(f, l)
			del, add := changed(f, old, l.Buckets, false), changed(f, l.Buckets, old, true)
			if err := inChunks(set, del, p.nft.SetDeleteElements); err != nil {
				return err
			}
			if err := inChunks(set, add, p.nft.SetAddElements); err != nil {
				return err
			}
			dirty = dirty || len(del)+len(add) > 0
		}
	}
	if !dirty {
		return nil
	}
	if err := p.nft.Flush(); err != nil {
		return fmt.Errorf("kernelpath: update table %s: %w", p.opts.Table, err)
	}
	p.remember(ls)
	return nil
}

// updateVIPs queues the changes of l's VIPs of family f since old; it
// returns how many.
func (p *Path) updateVIPs(f family, l Listener, old []netip.Addr) (int, error) {
	set := p.vipsOf(f, l)
	add, del := vipElements(f, l.VIPs, old), vipElements(f, old, l.VIPs)
	if err := inChunks(set, del, p.nft.SetDeleteElements); err != nil {
		return 0, err
	}
	if err := inChunks(set, add, p.nft.SetAddElements); err != nil {
		return 0, err
	}
	return len(add) + len(del), nil
}

// Counters reads every listener's counters.
func (p *Path) Counters() (map[string]Counters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Counters{}
	for name := range p.installed {
		var c Counters
		for _, f := range []struct {
			kind           string
			packets, bytes *uint64
		}{
			{"in", &c.PacketsIn, &c.BytesIn}, {"out", &c.PacketsOut, &c.BytesOut},
			{"new", &c.NewFlows, nil}, {"refused", &c.Refused, nil},
		} {
			v, err := p.counter(counterName(f.kind, name))
			if err != nil {
				return nil, err
			}
			*f.packets = v.Packets
			if f.bytes != nil {
				*f.bytes = v.Bytes
			}
		}
		out[name] = c
	}
	return out, nil
}

func (p *Path) counter(name string) (*expr.Counter, error) {
	o, err := p.nft.GetObject(&nftables.NamedObj{Table: p.table, Name: name, Type: nftables.ObjTypeCounter})
	if err != nil {
		return nil, fmt.Errorf("kernelpath: read counter %s of %s: %w", name, p.opts.Table, err)
	}
	if n, ok := o.(*nftables.NamedObj); ok {
		if c, ok := n.Obj.(*expr.Counter); ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("kernelpath: counter %s of %s: unexpected object %T", name, p.opts.Table, o)
}

// Stop empties the maps and VIP sets: the kernel places no new flow (they
// reach the relay's sockets), flows already placed go on. The table stays
// until Close, so its NAT chains keep NAT hooked in the network namespace
// (see Anchor). Apply after Stop writes everything again.
func (p *Path) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.installed == nil {
		return nil
	}
	for _, l := range p.installed {
		for _, f := range families(l.Addr) {
			p.nft.FlushSet(p.mapOf(f, l))
			p.nft.FlushSet(p.vipsOf(f, l))
		}
	}
	if err := p.nft.Flush(); err != nil {
		return fmt.Errorf("kernelpath: empty the maps of %s: %w", p.opts.Table, err)
	}
	for name, l := range p.installed {
		l.Buckets, l.VIPs = make([]netip.AddrPort, len(l.Buckets)), nil
		p.installed[name] = l
	}
	return nil
}

// Close deletes the table and closes the sockets. Flows already placed go
// on (their NAT is in conntrack) until they idle out or Forget ends them.
func (p *Path) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	if p.installed != nil {
		p.nft.DelTable(p.table)
		if err = p.nft.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("kernelpath: delete table %s: %w", p.opts.Table, err)
		} else {
			err = nil // already gone (RemoveTables)
		}
	}
	p.ct.Close()
	return errors.Join(err, p.nft.CloseLasting())
}

// Anchor writes a table (named table) that keeps conntrack and NAT on in
// the calling thread's network namespace for as long as it exists. The
// kernel unhooks NAT in a namespace when its last NAT chain goes, and
// conntrack when its last user goes; the flows it carries would then lose
// their translation and reach the relay's sockets until the next table is
// written (a relay replaced, or restarted). It holds an empty NAT chain
// and one ct rule in a chain no packet passes through.
func Anchor(table string) error {
	nft, err := nftables.New()
	if err != nil {
		return fmt.Errorf("kernelpath: nftables: %w", err)
	}
	t := nft.AddTable(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	nft.AddChain(&nftables.Chain{Name: "nat", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(dnatPriority)})
	c := nft.AddChain(&nftables.Chain{Name: "conntrack", Table: t})
	nft.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: []expr.Any{&expr.Ct{Key: expr.CtKeySTATE, Register: 1}}})
	if err := nft.Flush(); err != nil {
		return fmt.Errorf("kernelpath: write anchor table %s: %w", table, err)
	}
	return nil
}

// RemoveTables deletes every inet table whose name starts with prefix but
// not with keep ("" keeps none), in the calling thread's network namespace.
func RemoveTables(prefix, keep string) error {
	nft, err := nftables.New()
	if err != nil {
		return fmt.Errorf("kernelpath: nftables: %w", err)
	}
	tables, err := nft.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("kernelpath: list tables: %w", err)
	}
	n := 0
	for _, t := range tables {
		if strings.HasPrefix(t.Name, prefix) && (keep == "" || !strings.HasPrefix(t.Name, keep)) {
			nft.DelTable(t)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := nft.Flush(); err != nil {
		return fmt.Errorf("kernelpath: delete %d tables named %s*: %w", n, prefix, err)
	}
	return nil
}
