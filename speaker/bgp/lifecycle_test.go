package bgp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Run, SetPeers, SetPaths and Status in-process without sessions: the peer
// points at an address nothing answers on (the announcer only dials, and
// TEST-NET-1 is never routed), so no root and no namespace are needed.
func TestLifecycleWithoutSessions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a, err := New(Options{RouterID: netip.MustParseAddr("192.0.2.1"), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()

	setCtx, setCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer setCancel()
	peers := []Peer{{Name: "r1", Address: netip.MustParseAddr("192.0.2.254"), MyASN: 64513, PeerASN: 64512, Password: "pw"}}
	if err := a.SetPeers(setCtx, peers); err != nil {
		t.Fatal(err)
	}
	paths := []Path{
		{Prefix: netip.MustParsePrefix("203.0.113.10/32")},
		{Prefix: netip.MustParsePrefix("2001:db8:113::10/128"), Peers: []string{"r1"}},
	}
	for range 2 { // the second call changes nothing
		if err := a.SetPaths(setCtx, paths); err != nil {
			t.Fatal(err)
		}
	}
	if got := value(t, m.updates.WithLabelValues("announce")); got != 2 {
		t.Errorf("announce updates %v, want 2 (SetPaths must be idempotent)", got)
	}
	if err := a.SetPaths(setCtx, paths[:1]); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m.announced); got != 1 {
		t.Errorf("announced %v, want 1", got)
	}
	if err := a.SetPeers(setCtx, peers); err != nil { // unchanged: no reset
		t.Fatal(err)
	}
	st := a.Status()
	if len(st) != 1 || st[0].Name != "r1" || st[0].State == "Established" {
		t.Errorf("status %+v", st)
	}
	if got := value(t, m.sessionUp.WithLabelValues("r1")); got != 0 {
		t.Errorf("session_up %v, want 0", got)
	}
	if err := a.SetPeers(setCtx, nil); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); len(st) != 0 {
		t.Errorf("status after removing the peer: %+v", st)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := a.SetPaths(setCtx, paths); !errors.Is(err, ErrStopped) {
		t.Errorf("SetPaths after stop: %v, want ErrStopped", err)
	}
	if got := value(t, m.announced); got != 0 {
		t.Errorf("announced after stop %v, want 0", got)
	}
}

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	t.Fatalf("metric %v: not a gauge or counter", m.Desc())
	return 0
}

// A peer that cannot be configured (its interface is missing on this node)
// is reported, Idle with the reason, until it can; the others run.
func TestPeerNotAddedIsReported(t *testing.T) {
	a, err := New(Options{RouterID: netip.MustParseAddr("192.0.2.1"), Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	setCtx, setCancel := context.WithTimeout(ctx, 10*time.Second)
	defer setCancel()
	peers := []Peer{
		{Name: "r1", Address: netip.MustParseAddr("192.0.2.254"), MyASN: 64513, PeerASN: 64512},
		{Name: "tor", Address: netip.MustParseAddr("fe80::1%pier-missing0"), MyASN: 64513, PeerASN: 64512},
	}
	if err := a.SetPeers(setCtx, peers); err == nil {
		t.Fatal("SetPeers with a missing interface: no error")
	}
	st := a.Status()
	if len(st) != 2 || st[1].Name != "tor" || st[1].State != "Idle" || !strings.Contains(st[1].LastError, "pier-missing0") {
		t.Fatalf("status %+v, want r1 and tor, tor Idle naming its interface", st)
	}
	if err := a.SetPeers(setCtx, peers[:1]); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); len(st) != 1 || st[0].Name != "r1" {
		t.Errorf("status after the peer left the plan %+v, want r1 alone", st)
	}
}
