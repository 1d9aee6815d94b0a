package allocator

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentUse runs Assign, Release, Stats and Lookup from several
// goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	a := newAlloc(t, Pool{Name: "p", Prefixes: prefixes("198.51.100.0/24", "2001:db8::/64")})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				k := ServiceKey{fmt.Sprintf("ns%d", g), fmt.Sprintf("s%d", i%10)}
				if _, err := a.Assign(Request{Service: k, Policy: PreferDualStack}); err != nil {
					t.Error(err)
				}
				a.Lookup(k)
				a.Stats()
				if i%3 == 0 {
					a.Release(k)
				}
			}
		})
	}
	wg.Wait()
	if err := a.check(); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseAndLookup(t *testing.T) {
	a := newAlloc(t, v4pool)
	if a.Release(key("ns/a")) {
		t.Error("Release of an unknown Service reported true")
	}
	if _, ok := a.Lookup(key("ns/a")); ok {
		t.Error("Lookup of an unknown Service reported true")
	}
	runSteps(t, a, []step{{req: r("ns/a"), want: []string{"198.51.100.0 v4"}}})
	if got, ok := a.Lookup(key("ns/a")); !ok || len(got) != 1 {
		t.Errorf("Lookup = %v, %v", got, ok)
	}
	if !a.Release(key("ns/a")) {
		t.Error("Release of a holder reported false")
	}
	if _, ok := a.Lookup(key("ns/a")); ok {
		t.Error("released Service still found")
	}
}
