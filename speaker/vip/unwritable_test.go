package vip_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pier-lb/pier/speaker/vip"
)

// stateErrors is pier_vip_errors_total{op="state"}.
func stateErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "pier_vip_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == "state" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatal(`no metric pier_vip_errors_total{op="state"}`)
	return 0
}

// logLines are the lines of logs at level that hold every one of parts.
func logLines(logs *bytes.Buffer, level string, parts ...string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level="+level) && !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			out = append(out, l)
		}
	}
	return out
}

// A state file that can no longer be written (first a regular file where
// its directory should be, then a directory where the file should be: both
// fail for root too) stops nothing: the addresses are added to and removed from
// lo all the same. Each distinct error is logged once, with the file and
// the reason, and every failed write is counted; once the file can be
// written again it is, and that is said.
func TestUnwritableStateFile(t *testing.T) {
	l := newLab(t)
	h := addHost(t, l, "node")
	nl := handleIn(t, h)
	dir := filepath.Join(t.TempDir(), "state-dir")
	state := filepath.Join(dir, "vips.json")
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	v, err := vip.New(vip.Options{Netlink: nl, Sysctl: h.Sysctl, StateFile: state,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: vip.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	set(t, v, vip4) // written
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("a file where a directory should be"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"127.0.0.1/8 lo", "::1/128"}
	failures := 0.0
	setAndCheck := func(when string, want ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := v.Set(ctx, hostAddrs(t, want)); err != nil {
			t.Errorf("Set %s: %v (the addresses are on lo; the state file is logged and counted)", when, err)
		}
		if diff := cmp.Diff(sorted(append(slices.Clone(base), want...)...), loAddrs(t, nl)); diff != "" {
			t.Errorf("lo %s (-want +got):\n%s", when, diff)
		}
		got := stateErrors(t, reg)
		if got <= failures {
			t.Errorf(`pier_vip_errors_total{op="state"} = %v %s, want more than %v: every failed write counts`, got, when, failures)
		}
		failures = got
	}

	setAndCheck("adding one, state unwritable", "198.51.100.200/32 lo:pier", "2001:db8:100::200/128")
	setAndCheck("removing one, state unwritable", "2001:db8:100::200/128")
	setAndCheck("unchanged, state unwritable", "2001:db8:100::200/128")
	if lines := logLines(&logs, "WARN", "file="+state, "not a directory"); len(lines) != 1 {
		t.Errorf("want one warning naming %s and the reason, got %d:\n%s", state, len(lines), logs.String())
	}

	// Another error: a directory where the file should be.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	setAndCheck("adding one, state is a directory", "198.51.100.200/32 lo:pier", "2001:db8:100::200/128")
	setAndCheck("unchanged, state is a directory", "198.51.100.200/32 lo:pier", "2001:db8:100::200/128")
	if lines := logLines(&logs, "WARN", "file="+state); len(lines) != 2 {
		t.Errorf("want two warnings naming %s, one per distinct error, got %d:\n%s", state, len(lines), logs.String())
	}

	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	before := stateErrors(t, reg)
	set(t, v, vip4, vip6)
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("state not written once it can be: %v", err)
	}
	if got, want := strings.TrimSpace(string(b)), `["198.51.100.200","2001:db8:100::200"]`; got != want {
		t.Errorf("state file %s, want %s", got, want)
	}
	if got := stateErrors(t, reg); got != before {
		t.Errorf(`pier_vip_errors_total{op="state"} = %v after a good write, want still %v`, got, before)
	}
	if lines := logLines(&logs, "INFO", "file="+state, "written again"); len(lines) != 1 {
		t.Errorf("want one line saying %s is written again, got %d:\n%s", state, len(lines), logs.String())
	}
}

// hostAddrs are the addresses of lo entries as loAddrs shows them
// ("198.51.100.200/32 lo:pier").
func hostAddrs(t *testing.T, entries []string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, e := range entries {
		p, err := netip.ParsePrefix(strings.Fields(e)[0])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Addr())
	}
	return out
}
