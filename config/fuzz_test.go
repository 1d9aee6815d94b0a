package config

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// FuzzParse builds objects from fuzzed strings and numbers and checks that
// Parse never panics, is deterministic, names the object of every error,
// and returns pools the allocator accepts.
func FuzzParse(f *testing.F) {
	f.Add("198.51.100.0/24,2001:db8::/64", "198.51.100.10-198.51.100.20", "65000:100,no-export,large:1:2:3", "192.0.2.1", "eth0", uint32(64512), int32(24), int64(90))
	f.Add("198.51.100.0/25", "198.51.100.128-198.51.100.255", "", "2001:db8::1", "", uint32(4200000000), int32(120), int64(0))
	f.Add("198.51.100.1/24,::/0", "2001:db8::ff-2001:db8::1", "65536:1,large:", "fe80::1%eth0", "a/b", uint32(0), int32(-1), int64(2))
	f.Add("::ffff:0:0/96", "1.2.3.4-::1", "nope", "0.0.0.0", "..", uint32(23456), int32(33), int64(-5))
	f.Add("", ",,", ":", "::ffff:1.2.3.4", strings.Repeat("x", 20), uint32(1), int32(0), int64(1<<40))
	f.Fuzz(func(t *testing.T, addrsA, addrsB, communities, peerAddr, iface string, asn uint32, agg int32, holdSec int64) {
		objs := fuzzObjects(addrsA, addrsB, communities, peerAddr, iface, asn, agg, holdSec)
		cfg, err := Parse(objs)
		if cfg == nil {
			t.Fatalf("Parse returned no config (error %v); want the valid part", err)
		}
		if _, err2 := Parse(objs); (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse is not deterministic:\n%v\n---\n%v", err, err2)
		}
		if err != nil {
			checkErrors(t, err)
		}
		if _, err := allocator.New(allocator.Options{Pools: cfg.Pools}); err != nil {
			t.Fatalf("allocator.New refused the pools Parse kept: %v", err)
		}
	})
}

func checkErrors(t *testing.T, err error) {
	errs := Errors(err)
	if len(errs) == 0 {
		t.Fatalf("error without *Error values: %v", err)
	}
	for _, e := range errs {
		if e.Kind == "" || e.Name == "" || e.Message == "" || e.Field == "" {
			t.Errorf("incomplete error: %#v", e)
		}
		if len(ForObject(err, e.Kind, e.Namespace, e.Name)) == 0 {
			t.Errorf("ForObject misses %v", e)
		}
	}
}

func fuzzObjects(addrsA, addrsB, communities, peerAddr, iface string, asn uint32, agg int32, holdSec int64) Objects {
	a, b := pool("a", split(addrsA)...), pool("b", split(addrsB)...)
	p := peer("r1", peerAddr)
	p.Spec.MyASN = int64(asn)
	p.Spec.HoldTime = dur(time.Duration(holdSec) * time.Second)
	return Objects{
		Pools: []v1alpha1.IPAddressPool{a, b},
		L2Advertisements: []v1alpha1.L2Advertisement{l2("l2", v1alpha1.L2AdvertisementSpec{
			Interfaces:    split(iface),
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"k": iface}}},
		})},
		BGPPeers: []v1alpha1.BGPPeer{p, peer("r2", peerAddr)},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{bgpAdv("adv", v1alpha1.BGPAdvertisementSpec{
			AggregationLength:   &agg,
			AggregationLengthV6: ptr(agg + 96),
			Communities:         split(communities),
			Peers:               split(iface),
		})},
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
