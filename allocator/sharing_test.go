package allocator

import (
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	tcp80  = Port{TCP, 80}
	udp80  = Port{UDP, 80}
	tcp443 = Port{TCP, 443}
)

func TestSharing(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "same key, different ports share a requested address",
		steps: []step{
			{req: r("ns/a", ips("198.51.100.1"), share("k", tcp80)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", ips("198.51.100.1"), share("k", tcp443)), want: []string{"198.51.100.1 v4"}},
		},
	}, {
		name: "same port, different protocol shares",
		steps: []step{
			{req: r("ns/a", ips("198.51.100.1"), share("k", tcp80)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", ips("198.51.100.1"), share("k", udp80)), want: []string{"198.51.100.1 v4"}},
		},
	}, {
		name: "same key joins without asking for the address",
		steps: []step{
			{req: r("ns/x"), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/a", share("k", tcp80)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", share("k", udp80)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/c", share("k", tcp80)), want: []string{"198.51.100.2 v4"}}, // clash: new address
			{req: r("ns/d", share("other", tcp443)), want: []string{"198.51.100.3 v4"}},
		},
	}, {
		name: "port clash names the other Service",
		steps: []step{
			{req: r("ns/a", ips("198.51.100.1"), share("k", tcp80, tcp443)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", ips("198.51.100.1"), share("k", udp80, tcp443)), err: ErrSharingConflict, msg: "ns/a"},
		},
	}, {
		name: "different key names the other Service",
		steps: []step{
			{req: r("ns/a", ips("198.51.100.1"), share("k1", tcp80)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", ips("198.51.100.1"), share("k2", tcp443)), err: ErrSharingConflict, msg: "ns/a"},
		},
	}, {
		name: "no key on either side",
		steps: []step{
			{req: r("ns/a", ips("198.51.100.1")), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", ips("198.51.100.1"), share("k", tcp80)), err: ErrAddressInUse, msg: "ns/a"},
			{req: r("ns/c", ips("198.51.100.2"), share("k", tcp80)), want: []string{"198.51.100.2 v4"}},
			{req: r("ns/d", ips("198.51.100.2")), err: ErrAddressInUse, msg: "ns/c"},
		},
	}, {
		name: "changing ports to clash moves the Service",
		steps: []step{
			{req: r("ns/a", share("k", tcp80)), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/b", share("k", tcp443)), want: []string{"198.51.100.0 v4"}},
			{req: r("ns/b", share("k", tcp80)), want: []string{"198.51.100.1 v4"}},
			{req: r("ns/b", share("k", udp80)), want: []string{"198.51.100.1 v4"}}, // sticky
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newAlloc(t, v4pool), tt.steps)
		})
	}
}

func TestSharingRelease(t *testing.T) {
	a := newAlloc(t, v4pool)
	runSteps(t, a, []step{
		{req: r("ns/a", ips("198.51.100.1"), share("k", tcp80)), want: []string{"198.51.100.1 v4"}},
		{req: r("ns/b", ips("198.51.100.1"), share("k", udp80)), want: []string{"198.51.100.1 v4"}},
		{release: "ns/a"},
	})
	if got := a.Stats()[0].InUse; got != 1 {
		t.Errorf("in use after releasing one sharer = %d, want 1", got)
	}
	if got, _ := a.Lookup(key("ns/b")); len(got) != 1 {
		t.Errorf("ns/b lost its address: %v", got)
	}
	a.Release(key("ns/b"))
	want := []PoolStats{{Pool: "v4", Family: IPv4, Total: big.NewInt(4), InUse: 0, Available: big.NewInt(4)}}
	if diff := cmp.Diff(want, a.Stats(), cmpBig); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if err := a.check(); err != nil {
		t.Fatal(err)
	}
}
