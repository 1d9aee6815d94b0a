package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"

	corev1 "k8s.io/api/core/v1"
)

// Labels on the Leases pier-relay renews for every Relay it serves (in the
// relay's own namespace, Pier's), from which the controller counts
// status.readyRelays.
const (
	LabelRelayName      = "pier.dev/relay-name"
	LabelRelayNamespace = "pier.dev/relay-namespace"
)

// Default relay listeners: calling-ingress practice.
const (
	DefaultRelayTCPListener = "calls-tcp"
	DefaultRelayUDPListener = "calls-udp"
	DefaultRelayTCPPort     = 8443
	DefaultRelayUDPPort     = 16384
)

// ListenersOrDefault returns the listeners, or 8443/TCP and 16384/UDP when
// none are given.
func (s *RelaySpec) ListenersOrDefault() []RelayListener {
	if len(s.Listeners) > 0 {
		return s.Listeners
	}
	return []RelayListener{
		{Name: DefaultRelayTCPListener, Protocol: corev1.ProtocolTCP, Port: DefaultRelayTCPPort},
		{Name: DefaultRelayUDPListener, Protocol: corev1.ProtocolUDP, Port: DefaultRelayUDPPort},
	}
}

// RelayLeaseName names the Lease node renews while it serves the Relay
// namespace/name: fixed length whatever the names, so any node name fits.
func RelayLeaseName(namespace, name, node string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name + "/" + node))
	return "relay-" + hex.EncodeToString(sum[:12])
}
