package config

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// Relay is one valid relay configuration, as the relays run it: a Relay
// object's (ParseRelay) or standalone pier-relay's flags' (StandaloneRelay).
// Zero limits and timeouts take the relay's defaults.
type Relay struct {
	// Listeners are the listeners as written, or the defaults.
	Listeners []RelayListener
	Backend   RelayBackend
	// Settings is everything a relay instance runs with but its listeners
	// and its token; comparable with ==.
	Settings RelaySettings
	// Token is the routing token; Length 0 is off.
	Token RelayToken
	// Exposure is the Relay's, defaults applied; HostNetwork for
	// standalone pier-relay.
	Exposure v1alpha1.RelayExposureType
	// NodeSelector picks the nodes that run the Relay's relays
	// (labels.Everything() when the Relay has none).
	NodeSelector labels.Selector
}

// RelayListener is one listener of a Relay.
type RelayListener struct {
	Name     string
	Protocol corev1.Protocol // TCP or UDP
	// Addr is the address to listen on; zero for a Relay object's listener:
	// the node's relays listen on their wildcard address.
	Addr netip.Addr
	Port uint16
	// TargetPort is the backends' port when their EndpointSlices do not name
	// one; 0 for Port.
	TargetPort uint16
	// NodePort is the owned Service's node port (exposure NodePort); 0 lets
	// the API server choose.
	NodePort uint16
}

// RelayBackend is how the relays reach each backend.
type RelayBackend struct {
	ServiceName   string // empty for standalone pier-relay
	ProxyProtocol bool
	// HealthCheckPort is the TCP port of the active check; 0 for the first
	// TCP listener's backend port.
	HealthCheckPort uint16
}

// RelaySettings are a relay's routing, limits, timeouts and data path. Its
// fields are comparable: two relays run alike when their listeners, token
// and settings are ==.
type RelaySettings struct {
	// KeyByAddressOnly hashes the client address only (routing.key
	// ClientAddress).
	KeyByAddressOnly bool
	MaxFlows         int
	MaxDatagramSize  int
	// MaxTCPConns and MaxTCPConnsPerSource are limits.maxTCPConnections and
	// maxTCPConnectionsPerSource.
	MaxTCPConns          int
	MaxTCPConnsPerSource int
	ConnectTimeout       time.Duration
	TCPIdleTimeout       time.Duration
	UDPIdleTimeout       time.Duration
	DrainTimeout         time.Duration
	// Kernel is the kernel data path for the UDP listeners (dataPath
	// Kernel).
	Kernel bool
}

// RelayToken is the routing token: the bytes [Offset, Offset+Length) of a
// flow's first payload name its backend.
type RelayToken struct{ Offset, Length int }

// relayOf is the configuration of a valid spec.
func relayOf(s *v1alpha1.RelaySpec) Relay {
	r := Relay{
		Backend: RelayBackend{
			ServiceName: s.Backend.ServiceName, ProxyProtocol: s.Backend.ProxyProtocol,
			HealthCheckPort: uint16(s.Backend.HealthCheckPort),
		},
		Settings: RelaySettings{
			KeyByAddressOnly:     s.Routing.Key == v1alpha1.RoutingKeyClientAddress,
			MaxFlows:             int(s.Limits.MaxFlows),
			MaxDatagramSize:      int(s.Limits.MaxDatagramSize),
			MaxTCPConns:          int(s.Limits.MaxTCPConnections),
			MaxTCPConnsPerSource: int(s.Limits.MaxTCPConnectionsPerSource),
			ConnectTimeout:       duration(s.Timeouts.Connect),
			TCPIdleTimeout:       duration(s.Timeouts.TCPIdle),
			UDPIdleTimeout:       duration(s.Timeouts.UDPIdle),
			DrainTimeout:         duration(s.Timeouts.Drain),
			Kernel:               RelayDataPath(s) == v1alpha1.DataPathKernel,
		},
		Exposure:     RelayExposure(s),
		NodeSelector: labels.Everything(),
	}
	if t := s.Routing.Token; t != nil {
		r.Token = RelayToken{Offset: int(t.Offset), Length: int(t.Length)}
	}
	if s.NodeSelector != nil {
		r.NodeSelector, _ = metav1.LabelSelectorAsSelector(s.NodeSelector) // parsed by ParseRelay
	}
	for _, l := range s.ListenersOrDefault() {
		r.Listeners = append(r.Listeners, RelayListener{
			Name: l.Name, Protocol: l.Protocol, Port: uint16(l.Port),
			TargetPort: uint16(l.TargetPort), NodePort: uint16(l.NodePort),
		})
	}
	return r
}

func duration(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}
