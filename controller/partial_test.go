package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller"
)

// An invalid pool is left out and reported (event, metric) while a valid
// pool created next to it is applied; an address an edit leaves outside
// every pool stays with its Service and is counted as orphaned.
func TestInvalidPoolLeavesTheRestApplied(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	e.create(pool("edge", "198.51.100.200-198.51.100.201"))
	e.startController(func(o *controller.ManagerOptions) { o.Registerer = reg })
	e.create(service("default", "first"))
	first := e.waitAssigned("default", "first")

	e.create(pool("broken", "198.51.100.300/24")) // straight to the API server: no webhook here
	if note := e.waitEventIn(pierNS, "broken", "InvalidPool"); !strings.Contains(note, "spec.addresses[0]") {
		t.Errorf("event %q does not name the field", note)
	}
	e.create(pool("extra", "203.0.113.0/30"))
	e.create(service("default", "second", annotate(v1alpha1.AnnotationAddressPool, "extra")))
	if got := e.waitAssigned("default", "second"); len(got) != 1 || !strings.HasPrefix(got[0], "203.0.113.") {
		t.Errorf("second got %v, want an address of pool extra", got)
	}
	waitGauge(t, reg, "pier_controller_config_invalid_objects", `kind="IPAddressPool"`, 1)

	e.updatePool("edge", "198.51.100.202/32") // first's address falls outside every pool
	e.waitEvent("default", "first", "AddressOrphaned")
	if got := e.waitAssigned("default", "first"); got[0] != first[0] {
		t.Errorf("first moved from %v to %v", first, got)
	}
	waitGauge(t, reg, "pier_allocator_orphaned_addresses", "", 1)
}

// waitGauge polls reg until the gauge whose labels render as labels (""
// for none) has the value want.
func waitGauge(t *testing.T, reg *prometheus.Registry, name, labels string, want float64) {
	t.Helper()
	var got []string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		got = got[:0]
		mfs, err := reg.Gather()
		if err != nil {
			return false, err
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
				got = append(got, fmt.Sprintf("{%s} %v", strings.Join(ls, ","), m.GetGauge().GetValue()))
				if strings.Join(ls, ",") == labels && m.GetGauge().GetValue() == want {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("%s{%s} never reached %v; have %v", name, labels, want, got)
	}
}
