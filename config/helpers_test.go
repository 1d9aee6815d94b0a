package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

const ns = "pier-system"

func meta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func pool(name string, addrs ...string) v1alpha1.IPAddressPool {
	return v1alpha1.IPAddressPool{ObjectMeta: meta(name), Spec: v1alpha1.IPAddressPoolSpec{Addresses: addrs}}
}

func peer(name, addr string) v1alpha1.BGPPeer {
	return v1alpha1.BGPPeer{ObjectMeta: meta(name), Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: addr}}
}

func l2(name string, spec v1alpha1.L2AdvertisementSpec) v1alpha1.L2Advertisement {
	return v1alpha1.L2Advertisement{ObjectMeta: meta(name), Spec: spec}
}

func bgpAdv(name string, spec v1alpha1.BGPAdvertisementSpec) v1alpha1.BGPAdvertisement {
	return v1alpha1.BGPAdvertisement{ObjectMeta: meta(name), Spec: spec}
}

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func ref(kind, name string) Ref { return Ref{Kind: kind, Namespace: ns, Name: name} }

// perr is an expected error.
func perr(kind, name, field, msg string, related ...Ref) *Error {
	return &Error{Kind: kind, Namespace: ns, Name: name, Field: field, Message: msg, Related: related}
}

// selectorCmp compares label selectors by their canonical string.
var selectorCmp = cmp.Comparer(func(a, b labels.Selector) bool { return a.String() == b.String() })

func sel(t *testing.T, s string) labels.Selector {
	t.Helper()
	out, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// errorCase is one table case of Parse that expects exactly these errors.
type errorCase struct {
	name string
	objs Objects
	want []*Error
}

func runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(tc.objs)
			got := Errors(err)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b []Ref) bool { return cmp.Equal(a, b) || len(a)+len(b) == 0 })); diff != "" {
				t.Errorf("Parse errors (-want +got):\n%s", diff)
			}
			if cfg == nil {
				t.Fatalf("Parse returned no config with error %v", err)
			}
			if _, err := allocator.New(allocator.Options{Pools: cfg.Pools}); err != nil {
				t.Errorf("allocator.New refused the pools Parse kept: %v", err)
			}
		})
	}
}
