package agent

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/relay"
)

// kernelToken is a change the CRD schema lets through and config refuses:
// the kernel data path with a routing token.
func kernelToken(r *v1alpha1.Relay) {
	r.Spec.DataPath = v1alpha1.DataPathKernel
	r.Spec.Routing.Token = &v1alpha1.RelayRoutingToken{Offset: 4, Length: 16}
}

// TestDesiredRefusesInvalid: a Relay config refuses never reaches the
// desired set; one accepted before keeps its last valid configuration,
// with backends from the current EndpointSlices.
func TestDesiredRefusesInvalid(t *testing.T) {
	k := Key{Namespace: "a", Name: "r"}
	valid := calls("a", "r")
	idle := calls("a", "r", func(r *v1alpha1.Relay) { r.Spec.Timeouts.UDPIdle = &metav1.Duration{Duration: 20 * time.Second} })
	invalid := calls("a", "r", kernelToken)
	perSource := calls("a", "r", func(r *v1alpha1.Relay) { r.Spec.Limits.MaxTCPConnectionsPerSource = 20_000 })
	eps := []discoveryv1.EndpointSlice{slice("a", "media", discoveryv1.AddressTypeIPv4, nil, ep{addr: "198.51.100.1", target: "srv1"})}
	validCfg := Config{Listeners: []relay.Listener{
		{Name: "calls-tcp", Protocol: relay.TCP, Addr: netip.AddrPortFrom(any6, 8443)},
		{Name: "calls-udp", Protocol: relay.UDP, Addr: netip.AddrPortFrom(any6, 16384)},
	}}
	idleCfg := validCfg
	idleCfg.UDPIdleTimeout = 20 * time.Second
	cases := []struct {
		name         string
		relays       []v1alpha1.Relay
		accepted     map[Key]*v1alpha1.Relay
		want         map[Key]Config
		wantAccepted map[Key]*v1alpha1.Relay
		refused      []string // a part of each refusal's message
	}{
		{name: "valid", relays: []v1alpha1.Relay{valid},
			want: map[Key]Config{k: validCfg}, wantAccepted: map[Key]*v1alpha1.Relay{k: &valid}},
		{name: "kernel with a token, never accepted", relays: []v1alpha1.Relay{invalid},
			refused: []string{"Relay a/r: spec.dataPath: Kernel cannot be combined with spec.routing.token"}},
		{name: "per-source limit over the default, never accepted", relays: []v1alpha1.Relay{perSource},
			refused: []string{"spec.limits.maxTCPConnectionsPerSource: 20000 is more than maxTCPConnections (10000, the default)"}},
		{name: "accepted, then made invalid: kept as accepted", relays: []v1alpha1.Relay{invalid},
			accepted: map[Key]*v1alpha1.Relay{k: &idle},
			want:     map[Key]Config{k: idleCfg}, wantAccepted: map[Key]*v1alpha1.Relay{k: &idle},
			refused: []string{"Kernel cannot be combined with spec.routing.token"}},
		{name: "accepted, then changed validly", relays: []v1alpha1.Relay{idle},
			accepted: map[Key]*v1alpha1.Relay{k: &valid},
			want:     map[Key]Config{k: idleCfg}, wantAccepted: map[Key]*v1alpha1.Relay{k: &idle}},
		{name: "accepted, then deleted", accepted: map[Key]*v1alpha1.Relay{k: &valid}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, accepted, refused := Desired(Inputs{Relays: tc.relays, EndpointSlices: eps, Bind: any6, Accepted: tc.accepted})
			configs := map[Key]Config{}
			for k, w := range got {
				configs[k] = w.Config
				if len(w.Backends) != 1 || w.Backends[0].Name != "srv1" {
					t.Errorf("%s backends %v, want srv1 from the current slices", k, backendNames(w.Backends))
				}
			}
			if diff := cmp.Diff(tc.want, configs, cmpAP, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("desired configs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAccepted, accepted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("accepted (-want +got):\n%s", diff)
			}
			if len(refused) != len(tc.refused) {
				t.Fatalf("refused %v, want %d", refused, len(tc.refused))
			}
			for _, want := range tc.refused {
				if err := refused[k]; err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %v, want one saying %q", err, want)
				}
			}
		})
	}
}

// TestInvalidChangeKeepsRelay: an agent serving a Relay keeps the very
// relay instance running when the Relay is changed into one config
// refuses, says so once and counts it; a valid change then replaces it.
func TestInvalidChangeKeepsRelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	port := freePort(t)
	r := calls("a", "r", func(r *v1alpha1.Relay) {
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "calls-tcp", Protocol: "TCP", Port: int32(port)}}
	})
	c := fakeAPI(t, &r)
	var logs lab.SyncBuffer
	reg := prometheus.NewRegistry()
	a, err := New(Options{
		Config: &rest.Config{Host: "https://192.0.2.1:6443"}, NodeName: "node1", Namespace: "pier-system",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.leases = newLeases(fake.NewClientset().CoordinationV1().Leases("pier-system"), "node1", time.Minute, 10*time.Second,
		a.opts.Clock, a.log, a.metrics)
	bind := netip.MustParseAddr("127.0.0.1")
	k := Key{Namespace: "a", Name: "r"}
	defer func() { cancel(); a.shutdown() }() // the relays end with ctx, then drain

	a.reconcile(ctx, c, bind)
	first := a.running[k]
	if first == nil {
		t.Fatalf("valid Relay not served:\n%s", logs.String())
	}
	update := func(mod func(*v1alpha1.Relay)) {
		t.Helper()
		var cur v1alpha1.Relay
		if err := c.Get(ctx, k, &cur); err != nil {
			t.Fatal(err)
		}
		mod(&cur)
		if err := c.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
	}
	update(kernelToken)
	a.reconcile(ctx, c, bind)
	a.reconcile(ctx, c, bind)
	if got := a.running[k]; got != first || first.exited() {
		t.Fatalf("after an invalid change the relay is %p (exited %v), want the running %p kept", got, first.exited(), first)
	}
	if n := strings.Count(logs.String(), "Relay is invalid"); n != 1 {
		t.Errorf("the refusal said %d times, want once:\n%s", n, logs.String())
	}
	if v := gauge(t, a.metrics.invalid); v != 1 {
		t.Errorf("pier_relay_agent_invalid_relays = %v, want 1", v)
	}
	update(func(r *v1alpha1.Relay) {
		r.Spec.DataPath, r.Spec.Timeouts.TCPIdle = "", &metav1.Duration{Duration: time.Minute}
	})
	a.reconcile(ctx, c, bind)
	if got := a.running[k]; got == nil || got == first || got.cfg.TCPIdleTimeout != time.Minute {
		t.Fatalf("a valid change after the invalid one: relay %p (was %p), want a new one with the new idle timeout:\n%s", got, first, logs.String())
	}
	if v := gauge(t, a.metrics.invalid); v != 0 {
		t.Errorf("pier_relay_agent_invalid_relays = %v, want 0", v)
	}
}

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// freePort is a TCP port free on the loopback address.
func freePort(t testing.TB) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
