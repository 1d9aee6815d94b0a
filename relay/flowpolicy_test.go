package relay

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// steppedClock is a host clock whose wall time can be stepped (NTP, an
// operator's date -s) while its monotonic reading goes on steadily. A time.Time
// it returns carries, like one of time.Now, the monotonic reading of its
// instant, kept here by wall value since a test cannot set it in time.Time.
type steppedClock struct {
	mu     sync.Mutex
	mono   time.Duration // monotonic time since the clock was made
	step   time.Duration // wall clock minus monotonic
	monoAt map[int64]time.Duration
}

var stepEpoch = time.Unix(1_800_000_000, 0)

func newSteppedClock() *steppedClock { return &steppedClock{monoAt: map[int64]time.Duration{}} }

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := stepEpoch.Add(c.mono + c.step)
	c.monoAt[t.UnixNano()] = c.mono
	return t
}

// Since is monotonic, as time.Since of a time from time.Now.
func (c *steppedClock) Since(t time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.monoAt[t.UnixNano()]
	if !ok {
		panic("steppedClock.Since of a time it did not return")
	}
	return c.mono - m
}

// advance lets d pass and steps the wall clock by jump.
func (c *steppedClock) advance(d, jump time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mono += d
	c.step += jump
}

// A wall clock step must neither expire live flows nor keep dead ones: idle
// time is monotonic.
func TestFlowTableClockStep(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pass      time.Duration // monotonic time from the flows' last datagram
		jump      time.Duration // wall clock step meanwhile
		wantFlows int
	}{
		{"ahead, live", time.Second, time.Hour, 2},
		{"behind, live", time.Second, -time.Hour, 2},
		{"ahead, idle", 2 * time.Minute, time.Hour, 0},
		{"behind, idle", 2 * time.Minute, -time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newSteppedClock()
			ft := NewFlowTable[int](10, time.Minute, clk)
			for i := range 2 {
				if _, _, err := ft.Insert(client(i), "a", i); err != nil {
					t.Fatal(err)
				}
			}
			clk.advance(tc.pass, tc.jump)
			ft.Expire()
			if ft.Len() != tc.wantFlows {
				t.Errorf("%v later, wall clock stepped %v: %d flows left, want %d", tc.pass, tc.jump, ft.Len(), tc.wantFlows)
			}
		})
	}
}

// A full table takes a new flow in place of a flow that has carried one
// datagram from its client and is past the grace time; flows that carried
// more stay. A call (a datagram every 20 ms) thus gets into a table filled by
// a flood of single datagrams, and the flood never evicts it.
func TestFlowTableEvictsOneDatagramFlows(t *testing.T) {
	clk := newSteppedClock()
	ft := NewFlowTable[int](4, time.Minute, clk)
	var evicted []int
	ft.OnEvict(func(f *Flow[int]) { evicted = append(evicted, f.Value) })
	// Flows 0 and 1 are calls (a second datagram), 2 and 3 one datagram.
	for i := range 4 {
		if _, _, err := ft.Insert(client(i), "a", i); err != nil {
			t.Fatal(err)
		}
	}
	ft.Get(client(0))
	ft.Get(client(1))
	if _, _, err := ft.Insert(client(4), "b", 4); !errors.Is(err, ErrTableFull) {
		t.Fatalf("flow 4 within the grace time of the one-datagram flows: %v, want ErrTableFull", err)
	}
	clk.advance(10*time.Second, 0)
	for i := 4; i < 6; i++ {
		if _, ok, err := ft.Insert(client(i), "b", i); !ok || err != nil {
			t.Fatalf("flow %d with one-datagram flows past the grace time: inserted %v, %v", i, ok, err)
		}
	}
	if _, _, err := ft.Insert(client(6), "b", 6); !errors.Is(err, ErrTableFull) {
		t.Fatalf("flow 6 with only new flows and calls: %v, want ErrTableFull", err)
	}
	want := map[netip.AddrPort]string{client(0): "a", client(1): "a", client(4): "b", client(5): "b"}
	if diff := cmp.Diff(want, ft.Backends()); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 3}, evicted); diff != "" {
		t.Errorf("evicted (-want +got):\n%s", diff)
	}
}

// A flood of single datagrams from ever new sources fills the table, then a
// call fails over to this node: it gets in within a few datagrams, is never
// evicted by the flood, and the table stays bounded.
func TestFlowTableCallDuringFlood(t *testing.T) {
	clk := newSteppedClock()
	const max = 100
	ft := NewFlowTable[int](max, time.Minute, clk)
	call := netip.MustParseAddrPort("203.0.113.7:5060")
	flood := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 40000)
	}
	// 10,000 flood datagrams a second, arrivals at random (Poisson), ten
	// times what the table lets through (max per grace time); the call sends
	// every 20 ms from 100 ms on, for 10 s.
	rng := rand.New(rand.NewPCG(1, 2))
	var now, nextCall time.Duration = 0, 100 * time.Millisecond
	in, asked, answered, firstIn := false, 0, 0, 0
	for i := 0; nextCall < 10*time.Second; i++ {
		gap := time.Duration(rng.ExpFloat64() * float64(100*time.Microsecond))
		for nextCall <= now+gap {
			clk.advance(nextCall-now, 0)
			now = nextCall
			nextCall += 20 * time.Millisecond
			asked++
			if _, ok := ft.Get(call); ok {
				answered++
				continue
			}
			if in {
				t.Fatalf("%v: the call's flow was evicted", now)
			}
			if _, ok, err := ft.Insert(call, "call", 1); err == nil && ok {
				in, firstIn = true, asked
				answered++
			}
		}
		clk.advance(now+gap-now, 0)
		now += gap
		_, _, _ = ft.Insert(flood(i), "f", 0)
		if ft.Len() > max {
			t.Fatalf("%d flows, limit %d", ft.Len(), max)
		}
	}
	t.Logf("the call got in at its datagram %d; %d of its %d datagrams on its flow", firstIn, answered, asked)
	if !in || asked-answered > 25 {
		t.Errorf("call in %v, %d of %d datagrams on its flow, want all but the first few", in, answered, asked)
	}
}
