package vip

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// values returns name's samples keyed by their one label value.
func values(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[m.GetLabel()[0].GetValue()] = v
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	v, lo := newFake(t, "")
	v.m = NewMetrics(reg)
	lo.fail = map[netip.Addr]error{netip.MustParseAddr("198.51.100.201"): errors.New("boom")}
	v.Set(context.Background(), addrs("198.51.100.200", "198.51.100.201", "2001:db8:100::200"))
	v.Set(context.Background(), addrs("2001:db8:100::200"))

	want := map[string]map[string]float64{
		"pier_vip_addresses":     {"ipv4": 0, "ipv6": 1},
		"pier_vip_changes_total": {"add": 2, "remove": 1},
		"pier_vip_errors_total":  {"add": 1, "remove": 0, "list": 0, "state": 0},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, values(t, reg, name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}
