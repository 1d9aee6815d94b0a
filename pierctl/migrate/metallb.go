package migrate

// MetalLB's objects as pierctl reads them: only the fields MetalLB
// documents, decoded leniently (numbers as int64, so out-of-range values
// reach Pier's validation and are reported there rather than failing the
// decode). Written from MetalLB's API reference, not copied from MetalLB.

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group is MetalLB's API group.
const Group = "metallb.io"

// DefaultMetalLBNamespace is where MetalLB is usually installed.
const DefaultMetalLBNamespace = "metallb-system"

type mlPoolSpec struct {
	Addresses         []string             `json:"addresses"`
	AutoAssign        *bool                `json:"autoAssign"`
	AvoidBuggyIPs     bool                 `json:"avoidBuggyIPs"`
	ServiceAllocation *mlServiceAllocation `json:"serviceAllocation"`
}

type mlServiceAllocation struct {
	Priority           int64                  `json:"priority"`
	Namespaces         []string               `json:"namespaces"`
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors"`
	ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors"`
}

type mlL2Spec struct {
	IPAddressPools         []string               `json:"ipAddressPools"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
	Interfaces             []string               `json:"interfaces"`
}

type mlBGPAdvSpec struct {
	AggregationLength      *int64                 `json:"aggregationLength"`
	AggregationLengthV6    *int64                 `json:"aggregationLengthV6"`
	LocalPref              int64                  `json:"localPref"`
	Communities            []string               `json:"communities"`
	IPAddressPools         []string               `json:"ipAddressPools"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
	Peers                  []string               `json:"peers"`
}

type mlCommunitySpec struct {
	Communities []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"communities"`
}

// mlPeerSpec covers v1beta1 and v1beta2 BGPPeer: v1beta1's node selectors
// have the same JSON shape as a LabelSelector.
type mlPeerSpec struct {
	MyASN                  int64                  `json:"myASN"`
	PeerASN                int64                  `json:"peerASN"`
	DynamicASN             string                 `json:"dynamicASN"`
	PeerAddress            string                 `json:"peerAddress"`
	Interface              string                 `json:"interface"`
	SourceAddress          string                 `json:"sourceAddress"`
	PeerPort               int64                  `json:"peerPort"`
	HoldTime               *metav1.Duration       `json:"holdTime"`
	KeepaliveTime          *metav1.Duration       `json:"keepaliveTime"`
	ConnectTime            *metav1.Duration       `json:"connectTime"`
	RouterID               string                 `json:"routerID"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
	Password               string                 `json:"password"`
	PasswordSecret         *mlSecretRef           `json:"passwordSecret"`
	BFDProfile             string                 `json:"bfdProfile"`
	EnableGracefulRestart  bool                   `json:"enableGracefulRestart"`
	EBGPMultiHop           bool                   `json:"ebgpMultiHop"`
	VRF                    string                 `json:"vrf"`
	DisableMP              bool                   `json:"disableMP"`
	DualStackAddressFamily bool                   `json:"dualStackAddressFamily"`
}

type mlSecretRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// specKeys lists the spec fields each kind's converter handles, with the
// field names MetalLB documents; any other spec field is reported.
var specKeys = map[string][]string{
	"IPAddressPool":    {"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"},
	"L2Advertisement":  {"ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "interfaces"},
	"BGPAdvertisement": {"aggregationLength", "aggregationLengthV6", "localPref", "communities", "ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "peers"},
	"Community":        {"communities"},
	"BFDProfile":       {"receiveInterval", "transmitInterval", "detectMultiplier", "echoInterval", "echoMode", "passiveMode", "minimumTtl"},
	"BGPPeer": {"myASN", "peerASN", "dynamicASN", "peerAddress", "interface", "sourceAddress", "peerPort",
		"holdTime", "keepaliveTime", "connectTime", "routerID", "nodeSelectors", "password", "passwordSecret",
		"bfdProfile", "enableGracefulRestart", "ebgpMultiHop", "vrf", "disableMP", "dualStackAddressFamily"},
}

// serviceAllocationKeys are the fields of spec.serviceAllocation.
var serviceAllocationKeys = []string{"priority", "namespaces", "namespaceSelectors", "serviceSelectors"}
