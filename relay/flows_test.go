package relay

import (
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

func client(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("198.18.0.10"), uint16(1000+i))
}

func TestFlowTableExpiry(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	ft := NewFlowTable[int](10, time.Minute, clk)
	for i := range 3 {
		if _, _, err := ft.Insert(client(i), "a", i); err != nil {
			t.Fatal(err)
		}
	}
	clk.Step(40 * time.Second)
	ft.Get(client(0)) // active: survives
	clk.Step(30 * time.Second)
	var expired []int
	for _, f := range ft.Expire() {
		expired = append(expired, f.Value)
	}
	if diff := cmp.Diff(map[netip.AddrPort]string{client(0): "a"}, ft.Backends()); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
	if len(expired) != 2 {
		t.Errorf("expired %v, want flows 1 and 2", expired)
	}
	clk.Step(61 * time.Second)
	if n := len(ft.Expire()); n != 1 || ft.Len() != 0 {
		t.Errorf("expired %d, left %d", n, ft.Len())
	}
}

func TestFlowTableLimit(t *testing.T) {
	ft := NewFlowTable[int](2, time.Minute, clocktesting.NewFakeClock(time.Now()))
	for i := range 2 {
		if _, ok, err := ft.Insert(client(i), "a", i); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if _, _, err := ft.Insert(client(2), "a", 2); !errors.Is(err, ErrTableFull) {
		t.Fatalf("third flow: %v, want ErrTableFull", err)
	}
	if f, ok := ft.Get(client(0)); !ok || f.Value != 0 {
		t.Fatal("existing flow lost when full")
	}
	if f, ok, err := ft.Insert(client(1), "b", 9); ok || err != nil || f.Backend != "a" {
		t.Fatalf("re-insert of an existing flow: %v %v %+v", ok, err, f)
	}
}

// place is the relay's placement rule: an existing flow keeps its backend,
// a new one asks the table.
func place(ft *FlowTable[int], tb *Table, c netip.AddrPort) string {
	if f, ok := ft.Get(c); ok {
		return f.Backend
	}
	f, _, _ := ft.Insert(c, tb.Lookup(HashKey(c, false)), 0)
	return f.Backend
}

func TestFlowStickiness(t *testing.T) {
	ft := NewFlowTable[int](1000, time.Minute, clocktesting.NewFakeClock(time.Now()))
	three := mustTable(t, []string{"a", "b", "c"})
	want := map[netip.AddrPort]string{}
	for i := range 100 {
		want[client(i)] = place(ft, three, client(i))
	}
	four := mustTable(t, []string{"a", "b", "c", "d"})
	moved := 0
	got := map[netip.AddrPort]string{}
	for i := range 100 {
		got[client(i)] = place(ft, four, client(i))
		if four.Lookup(HashKey(client(i), false)) != want[client(i)] {
			moved++
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flows moved (-before +after):\n%s", diff)
	}
	if moved == 0 {
		t.Error("test proves nothing: no key changed owner in the table")
	}
}

// BenchmarkFlowTableMemory reports the heap bytes one UDP flow's table entry
// takes (map slot, Flow and udpFlow; the socket, goroutine and reply buffer
// come on top, see the package doc).
func BenchmarkFlowTableMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ft := NewFlowTable[*udpFlow](n, time.Minute, clocktesting.NewFakeClock(time.Now()))
		bs := names(10)
		for i := range n {
			c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)}), uint16(i))
			_, _, _ = ft.Insert(c, bs[i%10], &udpFlow{client: c})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/flow")
		runtime.KeepAlive(ft)
	}
}
