package lab

import "testing"

// A site's nodes resolve each other on the segment: the host-wide
// neighbour tables must hold every site's entries, and the limits never
// drop below the kernel's defaults.
func TestHostLimitsHoldTheSegment(t *testing.T) {
	for _, n := range []int{1, 3, 13, 100, MaxSiteNodes} {
		got := hostLimits(n)
		entries := (n + 1) * (n + 1)
		for _, key := range []string{"net.ipv4.neigh.default.gc_thresh3", "net.ipv6.neigh.default.gc_thresh3"} {
			if got[key] < max(1024, entries) {
				t.Errorf("%d nodes: %s = %d, want at least %d", n, key, got[key], max(1024, entries))
			}
			if soft := got[key[:len(key)-1]+"2"]; soft < entries || soft > got[key] {
				t.Errorf("%d nodes: soft limit %d, want between %d and %d", n, soft, entries, got[key])
			}
		}
		if b := got["net.core.netdev_max_backlog"]; b < max(1000, 100*n) {
			t.Errorf("%d nodes: backlog %d, want room for a hundred broadcasts' copies to every port", n, b)
		}
	}
}
