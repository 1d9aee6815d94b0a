package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RelayExposureType says how clients reach a Relay.
// +kubebuilder:validation:Enum=LoadBalancer;NodePort;HostNetwork
type RelayExposureType string

const (
	// ExposeLoadBalancer: Pier creates and owns a LoadBalancer Service for
	// the Relay, so an address is allocated from a pool and announced.
	ExposeLoadBalancer RelayExposureType = "LoadBalancer"
	// ExposeNodePort: Pier creates and owns a NodePort Service.
	ExposeNodePort RelayExposureType = "NodePort"
	// ExposeHostNetwork: the relays listen on the nodes' own addresses.
	ExposeHostNetwork RelayExposureType = "HostNetwork"
)

// RelayRoutingKey is what Maglev hashes to place a new flow.
// +kubebuilder:validation:Enum=ClientAddressPort;ClientAddress
type RelayRoutingKey string

const (
	RoutingKeyClientAddressPort RelayRoutingKey = "ClientAddressPort"
	RoutingKeyClientAddress     RelayRoutingKey = "ClientAddress"
)

// RelayDataPath says what carries a Relay's UDP flows between clients and
// backends.
// +kubebuilder:validation:Enum=Userspace;Kernel
type RelayDataPath string

const (
	// DataPathUserspace: every flow passes through the relay process.
	DataPathUserspace RelayDataPath = "Userspace"
	// DataPathKernel: new UDP flows are translated (DNAT) by the node's
	// kernel instead; see RelaySpec.DataPath.
	DataPathKernel RelayDataPath = "Kernel"
)

// RelayListener is one frontend port of the Relay.
type RelayListener struct {
	// Name is unique in the Relay; the backend port is the EndpointSlice
	// port of the same name, else TargetPort, else Port.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// +kubebuilder:validation:Enum=TCP;UDP
	Protocol corev1.Protocol `json:"protocol"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// TargetPort is the backends' port when their EndpointSlices name none.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	TargetPort int32 `json:"targetPort,omitempty"`
	// NodePort for exposure NodePort (30000-32767); allocated when unset.
	// +kubebuilder:validation:Minimum=30000
	// +kubebuilder:validation:Maximum=32767
	// +optional
	NodePort int32 `json:"nodePort,omitempty"`
}

// RelayBackend names the calling servers.
type RelayBackend struct {
	// ServiceName is the Service in the Relay's namespace whose
	// EndpointSlices list the servers; only ready endpoints take new flows.
	// +kubebuilder:validation:MinLength=1
	ServiceName string `json:"serviceName"`
	// ProxyProtocol sends a PROXY protocol v2 header to the backends (before
	// the TCP stream, in front of every UDP datagram).
	// +optional
	ProxyProtocol bool `json:"proxyProtocol,omitempty"`
	// HealthCheckPort is a TCP port the active check connects to; default
	// the backend port of the first TCP listener.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	HealthCheckPort int32 `json:"healthCheckPort,omitempty"`
}

// RelayExposure says how clients reach the Relay.
type RelayExposure struct {
	// +kubebuilder:default:=LoadBalancer
	// +optional
	Type RelayExposureType `json:"type,omitempty"`
	// ServiceAnnotations are copied onto the owned Service (for example
	// pier.dev/address-pool or pier.dev/loadBalancerIPs).
	// +optional
	ServiceAnnotations map[string]string `json:"serviceAnnotations,omitempty"`
	// IPFamilyPolicy of the owned Service; default SingleStack.
	// +optional
	IPFamilyPolicy *corev1.IPFamilyPolicy `json:"ipFamilyPolicy,omitempty"`
	// +optional
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`
}

// RelayRouting says how a new flow picks its backend.
type RelayRouting struct {
	// +kubebuilder:default:=ClientAddressPort
	// +optional
	Key RelayRoutingKey `json:"key,omitempty"`
	// Token, when set, lets a new flow name its server: bytes
	// [offset, offset+length) of its first UDP datagram or first TCP bytes,
	// trailing NUL and space bytes trimmed, are matched against the
	// backends' names (the endpoint's hostname, else its pod name, else its
	// address). A flow naming a ready server goes there from any relay;
	// other flows are placed by key. TCP connections wait up to 1s for
	// those bytes before they are placed. Not with dataPath Kernel.
	// +optional
	Token *RelayRoutingToken `json:"token,omitempty"`
}

// RelayRoutingToken is the byte range of a flow's first payload that names
// its server.
type RelayRoutingToken struct {
	// Offset of the token in the first datagram or first TCP bytes.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	Offset int32 `json:"offset,omitempty"`
	// Length of the token in bytes.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=63
	Length int32 `json:"length"`
}

// RelayTimeouts; unset fields take the relay's defaults.
type RelayTimeouts struct {
	// Connect to a backend (TCP); default 5s.
	// +optional
	Connect *metav1.Duration `json:"connect,omitempty"`
	// TCPIdle closes a connection idle both ways; default 5m.
	// +optional
	TCPIdle *metav1.Duration `json:"tcpIdle,omitempty"`
	// UDPIdle expires a UDP flow; default 60s.
	// +optional
	UDPIdle *metav1.Duration `json:"udpIdle,omitempty"`
	// Drain is how long TCP flows may finish after SIGTERM; default 30s.
	// +optional
	Drain *metav1.Duration `json:"drain,omitempty"`
}

// RelayLimits bound what one relay instance holds.
type RelayLimits struct {
	// MaxFlows per UDP listener; new flows beyond it are refused and
	// counted. Default 100000.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxFlows int32 `json:"maxFlows,omitempty"`
	// MaxDatagramSize: larger UDP datagrams are dropped. Default 2048.
	// +kubebuilder:validation:Minimum=512
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MaxDatagramSize int32 `json:"maxDatagramSize,omitempty"`
	// MaxTCPConnections per TCP listener; connections beyond it are
	// accepted, closed at once and counted. Each holds two descriptors
	// (client and backend) until it ends or idles out. Default 10000.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxTCPConnections int32 `json:"maxTCPConnections,omitempty"`
	// MaxTCPConnectionsPerSource per TCP listener and client address (an
	// IPv6 client by its /64): connections beyond it are closed at once and
	// counted, so one source cannot take a listener's every connection.
	// At most maxTCPConnections. Default 1000.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxTCPConnectionsPerSource int32 `json:"maxTCPConnectionsPerSource,omitempty"`
}

// RelaySpec describes one relay: its frontends and its calling servers.
type RelaySpec struct {
	// Listeners; default calls-tcp 8443/TCP and calls-udp 16384/UDP.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Listeners []RelayListener `json:"listeners,omitempty"`
	Backend   RelayBackend    `json:"backend"`
	// +optional
	Exposure RelayExposure `json:"exposure,omitempty"`
	// NodeSelector picks the nodes whose relays serve this Relay; none
	// means every node running pier-relay.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// +optional
	Routing RelayRouting `json:"routing,omitempty"`
	// +optional
	Timeouts RelayTimeouts `json:"timeouts,omitempty"`
	// +optional
	Limits RelayLimits `json:"limits,omitempty"`
	// DataPath is Userspace (default: every flow passes through the relay
	// process) or Kernel. Kernel applies to UDP listeners only: a new UDP
	// flow whose Maglev owner has an address of the client's family is
	// translated (DNAT) by the node's kernel (nftables and conntrack)
	// instead of passing through the relay process; other flows, and all
	// TCP, stay in the relay. It needs NET_ADMIN for pier-relay (Helm value
	// relay.kernelDataPath, kustomize overlay relay-kernel) and cannot be
	// combined with backend.proxyProtocol (the kernel adds no header). A
	// flow keeps its backend while that backend is up, also across relay
	// restarts, since the NAT state lives in conntrack. timeouts.udpIdle
	// applies through a conntrack timeout policy, limits.maxFlows through a
	// conntrack count. The kernel path cannot see a dead UDP server's ICMP
	// port unreachable, so the Relay needs an active check: a TCP listener
	// or backend.healthCheckPort.
	// +kubebuilder:default:=Userspace
	// +optional
	DataPath RelayDataPath `json:"dataPath,omitempty"`
}

// RelayStatus is written by Pier's controller.
type RelayStatus struct {
	// ServiceName is the Service Pier owns for the Relay (LoadBalancer and
	// NodePort exposure).
	// +optional
	ServiceName string `json:"serviceName,omitempty"`
	// Addresses clients use: the owned Service's ingress addresses.
	// +optional
	Addresses []string `json:"addresses,omitempty"`
	// +optional
	ReadyBackends int32 `json:"readyBackends"`
	// +optional
	ReadyRelays int32 `json:"readyRelays"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Relay is an L4 TCP/UDP relay that takes each flow to the backend server
// that owns it, whichever node receives it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Exposure",type=string,JSONPath=`.spec.exposure.type`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.status.addresses`
// +kubebuilder:printcolumn:name="Backends",type=integer,JSONPath=`.status.readyBackends`
// +kubebuilder:printcolumn:name="Relays",type=integer,JSONPath=`.status.readyRelays`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Relay struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RelaySpec   `json:"spec"`
	Status RelayStatus `json:"status,omitempty"`
}

// RelayList is a list of Relay.
//
// +kubebuilder:object:root=true
type RelayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Relay `json:"items"`
}
