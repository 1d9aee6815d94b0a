package kernelpath

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with what the tests got")

// TestRulesGolden renders the table a Path writes for a fixed input (a
// dual-stack wildcard listener and an IPv4 one, IPv4 and IPv6 VIPs, three
// backends) as text and compares it with testdata/rules.golden. Run with
// -update after an intended change and read the diff.
func TestRulesGolden(t *testing.T) {
	opts := Options{Table: "pier_relay_golden_1", CtMark: 0x00100000, TableSize: 7,
		MaxFlows: 1000, IdleTimeout: time.Minute}
	backends := []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.1:7000"),
		netip.MustParseAddrPort("198.18.0.2:7000"),
		netip.MustParseAddrPort("[2001:db8:1::3]:7000"),
	}
	buckets := make([]netip.AddrPort, opts.TableSize)
	for i := range buckets {
		buckets[i] = backends[i%len(backends)]
	}
	vips := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::10")}
	ls := []Listener{
		{Name: "media", Addr: netip.IPv6Unspecified(), Port: 16384, VIPs: vips, Buckets: buckets},
		{Name: "sig", Addr: netip.MustParseAddr("198.18.0.100"), Port: 5060, VIPs: vips, Buckets: buckets},
	}
	if err := opts.validate(); err != nil {
		t.Fatal(err)
	}
	if err := validateListeners(ls, opts.TableSize); err != nil {
		t.Fatal(err)
	}
	p := &Path{opts: opts, table: &nftables.Table{Name: opts.Table, Family: nftables.TableFamilyINet}}
	rec := &recorder{}
	if err := p.write(rec, ls); err != nil {
		t.Fatal(err)
	}
	golden(t, "rules.golden", rec.String())
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}

// recorder is a tableWriter that renders what it is given, in order.
type recorder struct{ b strings.Builder }

func (r *recorder) String() string { return r.b.String() }

func (r *recorder) line(format string, a ...any) { fmt.Fprintf(&r.b, format+"\n", a...) }

func (r *recorder) AddTable(t *nftables.Table) *nftables.Table {
	r.line("table inet %s", t.Name)
	return t
}

var hookNames = map[nftables.ChainHook]string{
	*nftables.ChainHookPrerouting: "prerouting", *nftables.ChainHookForward: "forward",
	*nftables.ChainHookPostrouting: "postrouting",
}

func (r *recorder) AddChain(c *nftables.Chain) *nftables.Chain {
	if c.Hooknum == nil {
		r.line("chain %s", c.Name)
		return c
	}
	r.line("chain %s { type %s hook %s priority %d }", c.Name, c.Type, hookNames[*c.Hooknum], *c.Priority)
	return c
}

func (r *recorder) AddObj(o nftables.Obj) nftables.Obj {
	n := o.(*nftables.NamedObj)
	r.line("object %s type %d: %s", n.Name, n.Type, dumpExpr(n.Obj))
	return o
}

func (r *recorder) AddSet(s *nftables.Set, elems []nftables.SetElement) error {
	kind := "set"
	typ := s.KeyType.Name
	if s.IsMap {
		kind, typ = "map", typ+" : "+s.DataType.Name
	}
	r.line("%s %s { type %s }", kind, s.Name, typ)
	return r.SetAddElements(s, elems)
}

func (r *recorder) SetAddElements(s *nftables.Set, elems []nftables.SetElement) error {
	for _, e := range elems {
		if s.IsMap {
			r.line("  element %s bucket %d -> %s", s.Name, binaryutil.NativeEndian.Uint32(e.Key), mapValue(e.Val))
			continue
		}
		a, _ := netip.AddrFromSlice(e.Key)
		r.line("  element %s %s", s.Name, a)
	}
	return nil
}

// mapValue reads a map value (value): the address, then the port.
func mapValue(v []byte) string {
	n := len(v) - 4
	a, ok := netip.AddrFromSlice(v[:n])
	if !ok || v[n+2] != 0 || v[n+3] != 0 {
		return fmt.Sprintf("bad value %x", v)
	}
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[n:])).String()
}

func (r *recorder) AddRule(rule *nftables.Rule) *nftables.Rule {
	r.line("rule %s:", rule.Chain.Name)
	for _, e := range rule.Exprs {
		r.line("  %s", dumpExpr(e))
	}
	return rule
}

// dumpExpr is an expression as Go prints it (register data in the host's
// byte order where the kernel wants it: the golden file is little-endian).
func dumpExpr(e any) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", e), "*") + strings.TrimPrefix(fmt.Sprintf("%+v", e), "&")
}
