package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// AddressFamily is a BGP address family a session carries.
// +kubebuilder:validation:Enum=IPv4Unicast;IPv6Unicast
type AddressFamily string

const (
	IPv4Unicast AddressFamily = "IPv4Unicast"
	IPv6Unicast AddressFamily = "IPv6Unicast"
)

// SecretKeyRef names a key of a Secret in the namespace of BGP passwords
// (pier-bgp-passwords unless the installation names another: chart value
// speaker.bgpPasswordNamespace). The speakers may read Secrets there and
// nowhere else, so no other Secret is within their reach.
type SecretKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace defaults to the namespace of BGP passwords
	// (pier-bgp-passwords unless the installation names another); any other
	// is refused, since the speakers cannot read it.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Key defaults to "password".
	// +optional
	Key string `json:"key,omitempty"`
}

// BGPPeerSpec is one BGP session, opened from every selected node.
type BGPPeerSpec struct {
	// ASNs are 4-byte numbers; int64 because the API has no unsigned types.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	MyASN int64 `json:"myASN"`
	// PeerASN is the router's ASN; either it or dynamicASN is set.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	PeerASN int64 `json:"peerASN,omitempty"`
	// DynamicASN takes the router's ASN from its OPEN message instead of
	// a fixed peerASN: "internal" wants myASN (iBGP), "external" any ASN
	// but myASN (eBGP; a router opening with myASN is refused and the
	// session retried, the reason in its BGPSessionStatus).
	// +kubebuilder:validation:Enum=internal;external
	// +optional
	DynamicASN DynamicASN `json:"dynamicASN,omitempty"`
	// PeerAddress is the router's IPv4 or IPv6 address. An IPv6
	// link-local address (fe80::/10, as unnumbered fabrics use) needs the
	// node's interface towards the router: in interface, or as a zone
	// ("fe80::1%eth1").
	// +kubebuilder:validation:MinLength=1
	PeerAddress string `json:"peerAddress"`
	// Interface is the node's network interface on the link to a router
	// with a link-local peerAddress; the session and its BFD run on it.
	// Only with a link-local peerAddress. Every selected node needs an
	// interface of that name.
	// +kubebuilder:validation:MaxLength=15
	// +optional
	Interface string `json:"interface,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default:=179
	// +optional
	PeerPort uint16 `json:"peerPort,omitempty"`
	// SourceAddress is the node's address of the session, of the family
	// of peerAddress; link-local (on the interface) exactly when
	// peerAddress is. Default: chosen by the kernel.
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`
	// HoldTime: 0 or at least 3s. Default 90s.
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`
	// KeepaliveTime defaults to a third of HoldTime and may not exceed it.
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`
	// ConnectTime is the retry interval for a session that is down.
	// +optional
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`
	// PasswordSecret holds the TCP MD5 password; never inline. The Secret
	// lives in the namespace of BGP passwords (pier-bgp-passwords unless
	// the installation names another), the only namespace where the
	// speakers may read Secrets.
	// +optional
	PasswordSecret *SecretKeyRef `json:"passwordSecret,omitempty"`
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	// +optional
	EnableGracefulRestart bool `json:"enableGracefulRestart,omitempty"`
	// AddressFamilies the session carries; default: the peer address's own.
	// +optional
	// +listType=set
	AddressFamilies []AddressFamily `json:"addressFamilies,omitempty"`
	// MaxPrefixes is how many prefixes of one address family the router
	// may send a speaker; one more and the speaker closes the session and
	// drops them (speakers use no route: this only bounds their memory).
	// Default 10000. Keep it above the prefixes the cluster announces in
	// one family: routers commonly send each speaker the others' paths.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPrefixes int32 `json:"maxPrefixes,omitempty"`
	// BFD, when present, runs a BFD session (RFC 5880 asynchronous mode,
	// no echo) beside the BGP session: when BFD goes from Up to Down, and
	// the router did not shut its side on purpose (AdminDown), the speaker
	// closes the BGP session at once and keeps it closed until BFD is Up
	// again. The router needs BFD for this neighbor too.
	// +optional
	BFD *BFDSpec `json:"bfd,omitempty"`
}

// BFDSpec is the BFD session of a BGPPeer. An empty block ("bfd: {}")
// enables BFD with the defaults.
type BFDSpec struct {
	// ReceiveInterval is the shortest interval, in milliseconds, between
	// the BFD packets this node is ready to receive. Default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +optional
	ReceiveInterval *int32 `json:"receiveInterval,omitempty"`
	// TransmitInterval is the shortest interval, in milliseconds, at
	// which this node wants to send BFD packets. Default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +optional
	TransmitInterval *int32 `json:"transmitInterval,omitempty"`
	// DetectMultiplier: the router declares the session down after this
	// many intervals without a packet from this node. Default 3.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	// +optional
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`
	// Passive waits for the router's first BFD packet before sending any.
	// +optional
	Passive bool `json:"passive,omitempty"`
	// Multihop selects RFC 5883 (UDP port 4784) instead of single hop
	// (RFC 5881, port 3784, TTL 255). Default: the BGPPeer's ebgpMultiHop.
	// +optional
	Multihop *bool `json:"multihop,omitempty"`
	// MinimumTTL is the least TTL a multihop BFD packet may arrive with;
	// default 254 (at most one router between). Only with multihop.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	MinimumTTL *int32 `json:"minimumTTL,omitempty"`
}

// DynamicASN is the kind of ASN a BGPPeer accepts from the router.
type DynamicASN string

// The DynamicASN values.
const (
	DynamicASNInternal DynamicASN = "internal"
	DynamicASNExternal DynamicASN = "external"
)

// BGPPeer is a router the speakers peer with.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bgppeer
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec"`
}

// BGPPeerList is a list of BGPPeer.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

// BGPAdvertisementSpec says how pools are announced over BGP.
type BGPAdvertisementSpec struct {
	// AggregationLength for IPv4 paths; default 32.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`
	// AggregationLengthV6 for IPv6 paths; default 128.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPref *int64 `json:"localPref,omitempty"`
	// Communities: "65000:100", a well-known name ("no-export"), or a large
	// community "large:65000:1:2".
	// +optional
	Communities []string `json:"communities,omitempty"`
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	// Peers by BGPPeer name; none means all.
	// +optional
	Peers []string `json:"peers,omitempty"`
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
	// RequireReadyEndpoints, when true, withdraws a Service's paths that
	// this advertisement adds while the Service has no ready endpoint
	// anywhere in the cluster, whatever its externalTrafficPolicy, and
	// announces them again as soon as one is ready. An EndpointSlice
	// endpoint counts as ready when its ready condition is true or unset
	// and it is not terminating. While the API server is unreachable the
	// speakers keep announcing what they announced last. Default false:
	// announced whether or not endpoints are ready (with
	// externalTrafficPolicy Local, only from nodes that have a ready
	// endpoint, either way).
	// +optional
	RequireReadyEndpoints bool `json:"requireReadyEndpoints,omitempty"`
}

// BGPAdvertisement announces pools to BGP peers.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bgpadv
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPAdvertisementSpec `json:"spec,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisement.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}
