package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// LabelBGPPeer selects the BGPSessionStatus objects of one BGPPeer.
const LabelBGPPeer = "pier.dev/bgp-peer"

// BGPSessionStatusStatus is one node's session with one BGPPeer.
type BGPSessionStatusStatus struct {
	Node        string `json:"node,omitempty"`
	Peer        string `json:"peer,omitempty"` // the BGPPeer's name
	PeerAddress string `json:"peerAddress,omitempty"`
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string `json:"state,omitempty"`
	// Since is when State was entered.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// PeerASN is the ASN the router last opened the session with (with
	// the BGPPeer's dynamicASN, the one it chose).
	// +optional
	PeerASN int64 `json:"peerASN,omitempty"`
	// PrefixesSent is how many prefixes this node advertises to the peer.
	PrefixesSent int32 `json:"prefixesSent"`
	// PrefixesReceived is how many the peer sent (Pier ignores them).
	PrefixesReceived int32 `json:"prefixesReceived"`
	// BFDState is the state of the BFD session beside the BGP session
	// (Up, Down, Init or AdminDown); empty when the BGPPeer has no BFD.
	// +optional
	BFDState string `json:"bfdState,omitempty"`
	// LastError is the last reason the session went down, if any.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// BGPSessionStatus is written by the speaker on a node for each BGPPeer it
// peers with: one object per peer and node, in Pier's namespace. Read-only
// for users.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bgpsession
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.status.peer`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.peerAddress`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.status.bfdState`
// +kubebuilder:printcolumn:name="Sent",type=integer,JSONPath=`.status.prefixesSent`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.since`
type BGPSessionStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status BGPSessionStatusStatus `json:"status,omitempty"`
}

// BGPSessionStatusList is a list of BGPSessionStatus.
//
// +kubebuilder:object:root=true
type BGPSessionStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPSessionStatus `json:"items"`
}
