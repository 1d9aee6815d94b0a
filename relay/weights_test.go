package relay

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWeightsPerListener: a backend with weights serves only the listeners
// named there, in proportion to its weight; weight 0 takes no new flow
// but keeps the flows placed on it.
func TestWeightsPerListener(t *testing.T) {
	bs := three(t, false)
	bs[0].Weights = map[string]uint32{"tcp": 1} // a: TCP only
	bs[1].Weights = map[string]uint32{"tcp": 3, "udp": 1}
	bs[2].Weights = map[string]uint32{"udp": 1} // c: UDP only
	r := startRelay(t, Options{Backends: backends(bs...)})

	tcp := map[string]int{}
	for range 200 {
		name, c := tcpHello(t, r.Addr("tcp"))
		c.Close()
		tcp[name]++
	}
	if tcp["c"] != 0 || tcp["a"] == 0 || tcp["b"] < tcp["a"] {
		t.Errorf("TCP connections by backend %v: want none on c, about three times a's on b", tcp)
	}
	udp := map[string]int{}
	var conns []string
	for i := range 100 {
		c := dialUDP(t, r.Addr("udp"))
		name := udpAsk(t, c, fmt.Sprint(i))
		udp[name]++
		conns = append(conns, name)
	}
	if udp["a"] != 0 || udp["b"] == 0 || udp["c"] == 0 {
		t.Errorf("UDP flows by backend %v: want none on a, some on b and c", udp)
	}

	// b drained on UDP: no new UDP flow there, its placed flows stay.
	held := dialUDP(t, r.Addr("udp"))
	first := udpAsk(t, held, "held")
	bs[1].Weights = map[string]uint32{"tcp": 3, "udp": 0}
	if err := r.SetBackends(backends(bs...)); err != nil {
		t.Fatal(err)
	}
	if got := udpAsk(t, held, "again"); got != first {
		t.Errorf("placed flow moved from %s to %s after a weight change", first, got)
	}
	for i := range 50 {
		if name := udpAsk(t, dialUDP(t, r.Addr("udp")), fmt.Sprint(i)); name != "c" {
			t.Fatalf("new UDP flow %d went to %s, want c (b drained, a not serving UDP)", i, name)
		}
	}
}

// TestWeightsTables: listeners with the same weights share one table, and
// a backend without weights serves every listener with weight 1.
func TestWeightsTables(t *testing.T) {
	addr := netip.MustParseAddr("127.0.0.1")
	ls := []Listener{
		{Name: "a", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		{Name: "b", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		{Name: "c", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")},
	}
	r, err := New(Options{Listeners: ls, Backends: []Backend{
		{Name: "x", Addr: addr, Weights: map[string]uint32{"a": 2, "b": 2, "c": 1}},
		{Name: "y", Addr: addr},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.table("a") == r.table("c") || r.table("b") == r.table("c") {
		t.Error("listeners with other weights share a table")
	}
	if r.table("a") != r.table("b") {
		t.Error("listeners with the same weights built two tables")
	}
	if diff := cmp.Diff([]string{"x", "y"}, r.table("c").Backends()); diff != "" {
		t.Error(diff)
	}
}
