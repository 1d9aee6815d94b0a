package main

import (
	"flag"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/relay"
)

var cmpAP = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestStandaloneOptions: standalone mode's flags become relay options only
// once config accepts them, with the Relay rules (the kernel data path and
// a routing token exclude each other there, not here).
func TestStandaloneOptions(t *testing.T) {
	udp := relay.Listener{Name: "calls-udp", Protocol: relay.UDP, Addr: netip.MustParseAddrPort("0.0.0.0:16384")}
	tcp := relay.Listener{Name: "calls-tcp", Protocol: relay.TCP, Addr: netip.MustParseAddrPort("[::1]:8443")}
	srv1 := relay.Backend{Name: "srv1", Addr: netip.MustParseAddr("198.18.1.1")}
	defaults := func(o relay.Options) relay.Options {
		o.MaxFlows, o.MaxTCPConns, o.MaxTCPConnsPerSource = relay.DefaultMaxFlows, relay.DefaultMaxTCPConns, relay.DefaultMaxTCPConnsPerSource
		o.UDPIdleTimeout, o.DrainTimeout = relay.DefaultUDPIdleTimeout, relay.DefaultDrainTimeout
		return o
	}
	cases := []struct {
		name    string
		args    []string
		want    relay.Options
		wantErr []string // parts of the error
	}{
		{name: "defaults", args: []string{"--listen", "calls-udp/UDP/0.0.0.0:16384", "--backend", "srv1=198.18.1.1"},
			want: defaults(relay.Options{Listeners: []relay.Listener{udp}, Backends: []relay.Backend{srv1}})},
		{name: "everything", args: []string{"--listen", "calls-udp/udp/0.0.0.0:16384", "--listen", "calls-tcp/TCP/[::1]:8443",
			"--backend", "srv1=198.18.1.1", "--proxy-protocol", "--health-port", "9000", "--key-by-address", "--max-flows", "10",
			"--max-tcp-conns", "20", "--max-tcp-conns-per-source", "5", "--udp-idle", "20s", "--drain", "5s", "--token", "4:16"},
			want: relay.Options{
				Listeners:        []relay.Listener{udp, tcp},
				Backends:         []relay.Backend{{Name: "srv1", Addr: srv1.Addr, ProxyProtocol: true, HealthPort: 9000}},
				KeyByAddressOnly: true, MaxFlows: 10, MaxTCPConns: 20, MaxTCPConnsPerSource: 5,
				UDPIdleTimeout: 20 * time.Second, DrainTimeout: 5 * time.Second,
				Token: relay.TokenOptions{Offset: 4, Length: 16},
			}},
		{name: "kernel", args: []string{"--listen", "calls-udp/UDP/0.0.0.0:16384", "--backend", "srv1=198.18.1.1", "--kernel", "--health-port", "8443"},
			want: defaults(relay.Options{Listeners: []relay.Listener{udp}, Backends: []relay.Backend{{Name: "srv1", Addr: srv1.Addr, HealthPort: 8443}},
				Kernel: relay.KernelOptions{Enabled: true}})},
		{name: "kernel and token", args: []string{"--listen", "calls-tcp/TCP/[::1]:8443", "--kernel", "--token", "4:16"},
			wantErr: []string{"pier-relay flags: --kernel: Kernel cannot be combined with --token"}},
		{name: "kernel, UDP only, no active check", args: []string{"--listen", "calls-udp/UDP/0.0.0.0:16384", "--kernel"},
			wantErr: []string{"--kernel: Kernel needs an active TCP check (a TCP listener or --health-port)"}},
		{name: "per-source limit above the limit", args: []string{"--listen", "calls-udp/UDP/0.0.0.0:16384", "--max-tcp-conns-per-source", "20000"},
			wantErr: []string{"--max-tcp-conns-per-source: 20000 is more than maxTCPConnections (10000)"}},
		{name: "bad listener", args: []string{"--listen", "calls/SCTP/0.0.0.0:1"}, wantErr: []string{`--listen: listener "calls/SCTP/0.0.0.0:1"`}},
		{name: "bad token", args: []string{"--listen", "calls-udp/UDP/0.0.0.0:16384", "--token", "4"}, wantErr: []string{`--token: token "4": want offset:length`}},
		{name: "bad backend", args: []string{"--listen", "calls-udp/UDP/0.0.0.0:16384", "--backend", "=1.2.3.4"}, wantErr: []string{"--backend: "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sf standaloneFlags
			fs := flag.NewFlagSet("pier-relay", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sf.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := sf.options()
			for _, want := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want one saying %q", err, want)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpAP, cmpAddr); diff != "" {
				t.Errorf("relay options (-want +got):\n%s", diff)
			}
		})
	}
	var sf standaloneFlags
	fs := flag.NewFlagSet("pier-relay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sf.register(fs)
	if err := fs.Parse([]string{"--health-port", "70000"}); err == nil {
		t.Error("--health-port 70000 accepted")
	}
}
