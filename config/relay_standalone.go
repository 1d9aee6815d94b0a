package config

import (
	"math"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// KindStandaloneRelay is the Kind of the errors StandaloneRelay returns:
// they name the command line ("pier-relay flags") and the flag.
const KindStandaloneRelay = "pier-relay"

// standaloneFlags names, in the errors of StandaloneRelay, the flag that
// sets each Relay field (longer paths first: the replacer takes the first
// that matches).
var standaloneFlags = strings.NewReplacer(
	"spec.listeners", "--listen",
	"spec.backend.proxyProtocol", "--proxy-protocol",
	"spec.backend.healthCheckPort", "--health-port",
	"spec.routing.token.offset", "--token offset",
	"spec.routing.token.length", "--token length",
	"spec.routing.token", "--token",
	"spec.routing.key", "--key-by-address",
	"spec.limits.maxTCPConnectionsPerSource", "--max-tcp-conns-per-source",
	"spec.limits.maxTCPConnections", "--max-tcp-conns",
	"spec.limits.maxFlows", "--max-flows",
	"spec.limits.maxDatagramSize", "--max-datagram-size",
	"spec.timeouts.connect", "--connect-timeout",
	"spec.timeouts.tcpIdle", "--tcp-idle",
	"spec.timeouts.udpIdle", "--udp-idle",
	"spec.timeouts.drain", "--drain",
	"spec.dataPath", "--kernel",
)

// StandaloneRelay validates the configuration standalone pier-relay's
// flags give (listeners with their addresses, no Relay object) with the
// rules ParseRelay applies to a Relay's spec, and returns it as ParseRelay
// would (exposure HostNetwork, every node), or the errors, each naming the
// flag in Field. The backend's service name is not used.
func StandaloneRelay(r Relay) (Relay, []*Error) {
	p := &parser{}
	ref := Ref{Kind: KindStandaloneRelay, Name: "flags"}
	s := v1alpha1.RelaySpec{
		Backend: v1alpha1.RelayBackend{ServiceName: "standalone", ProxyProtocol: r.Backend.ProxyProtocol,
			HealthCheckPort: int32(r.Backend.HealthCheckPort)},
		Exposure: v1alpha1.RelayExposure{Type: v1alpha1.ExposeHostNetwork},
		Timeouts: v1alpha1.RelayTimeouts{
			Connect: specDuration(r.Settings.ConnectTimeout), TCPIdle: specDuration(r.Settings.TCPIdleTimeout),
			UDPIdle: specDuration(r.Settings.UDPIdleTimeout), Drain: specDuration(r.Settings.DrainTimeout),
		},
		Limits: v1alpha1.RelayLimits{
			MaxFlows:                   p.int32Flag(ref, "spec.limits.maxFlows", r.Settings.MaxFlows),
			MaxDatagramSize:            p.int32Flag(ref, "spec.limits.maxDatagramSize", r.Settings.MaxDatagramSize),
			MaxTCPConnections:          p.int32Flag(ref, "spec.limits.maxTCPConnections", r.Settings.MaxTCPConns),
			MaxTCPConnectionsPerSource: p.int32Flag(ref, "spec.limits.maxTCPConnectionsPerSource", r.Settings.MaxTCPConnsPerSource),
		},
	}
	if r.Settings.KeyByAddressOnly {
		s.Routing.Key = v1alpha1.RoutingKeyClientAddress
	}
	if r.Token != (RelayToken{}) {
		s.Routing.Token = &v1alpha1.RelayRoutingToken{
			Offset: p.int32Flag(ref, "spec.routing.token.offset", r.Token.Offset),
			Length: p.int32Flag(ref, "spec.routing.token.length", r.Token.Length),
		}
	}
	if r.Settings.Kernel {
		s.DataPath = v1alpha1.DataPathKernel
	}
	for _, l := range r.Listeners {
		s.Listeners = append(s.Listeners, v1alpha1.RelayListener{Name: l.Name, Protocol: l.Protocol, Port: int32(l.Port)})
	}
	if len(r.Listeners) == 0 {
		p.fail(ref, "spec.listeners", "none; want at least one")
	}
	if len(p.errs) == 0 {
		p.relaySpec(ref, &s)
	}
	if len(p.errs) > 0 {
		for _, e := range p.errs {
			e.Field, e.Message = standaloneFlags.Replace(e.Field), standaloneFlags.Replace(e.Message)
		}
		return Relay{}, p.errs
	}
	r.Exposure, r.NodeSelector = v1alpha1.ExposeHostNetwork, labels.Everything()
	r.Backend.ServiceName = ""
	return r, nil
}

// int32Flag is v, or an error and 0 when it does not fit the Relay field.
func (p *parser) int32Flag(r Ref, path string, v int) int32 {
	if v < math.MinInt32 || v > math.MaxInt32 {
		p.fail(r, path, "%d out of range", v)
		return 0
	}
	return int32(v)
}

// specDuration is d as a Relay timeout: unset when 0 (the default).
func specDuration(d time.Duration) *metav1.Duration {
	if d == 0 {
		return nil
	}
	return &metav1.Duration{Duration: d}
}
