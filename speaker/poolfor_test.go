package speaker

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// TestPoolFor: the pool an address is announced as. The controller writes
// "v4pool,v6pool" for a dual-stack Service served by two pools; an orphan
// of such a Service was read as one pool named "v4pool,v6pool", always
// gone, and announced only where it was last (nowhere after a restart
// without state).
func TestPoolFor(t *testing.T) {
	pools := []allocator.Pool{
		{Name: "v4", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/26")}},
		{Name: "v6", Ranges: []allocator.Range{{First: netip.MustParseAddr("2001:db8::10"), Last: netip.MustParseAddr("2001:db8::20")}}},
	}
	orphan4, orphan6 := "198.51.100.200", "2001:db8::99"
	tests := []struct {
		name, annotation, addr string
		wantPool               string
		wantGone               bool
	}{
		{"in a pool", "", "198.51.100.5", "v4", false},
		{"in a pool, annotation ignored", "v6", "198.51.100.5", "v4", false},
		{"orphan without annotation", "", orphan4, "", false},
		{"orphan of a pool still there", "v4", orphan4, "v4", false},
		{"orphan of a deleted pool", "old", orphan4, "old", true},
		{"dual-stack orphan, IPv4", "v4,v6", orphan4, "v4", false},
		{"dual-stack orphan, IPv6", "v4,v6", orphan6, "v6", false},
		{"dual-stack orphan, its family's pool deleted", "old4,v6", orphan4, "old4", true},
		{"dual-stack orphan, both pools deleted", "old4,old6", orphan6, "old4", true},
		{"orphan of a pool that lost its family", "v6", orphan4, "v6", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"}}
			if tt.annotation != "" {
				svc.Annotations = map[string]string{v1alpha1.AnnotationAllocatedFromPool: tt.annotation}
			}
			pool, gone := poolFor(svc, netip.MustParseAddr(tt.addr), pools)
			if diff := cmp.Diff([]any{tt.wantPool, tt.wantGone}, []any{pool, gone}); diff != "" {
				t.Errorf("poolFor(%q, %s) (-want +got):\n%s", tt.annotation, tt.addr, diff)
			}
		})
	}
}
