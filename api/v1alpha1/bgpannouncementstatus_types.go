package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BGPServiceAnnouncement is one Service a node announces over BGP.
type BGPServiceAnnouncement struct {
	// Service is namespace/name.
	Service   string   `json:"service"`
	Addresses []string `json:"addresses,omitempty"`
	// Peers are the BGPPeers (by name) this node sends the addresses to;
	// their sessions are in BGPSessionStatus.
	Peers []string `json:"peers,omitempty"`
	// NotAnnounced, when set, says why the node does not announce the
	// addresses, which it would announce to Peers otherwise:
	// NoReadyEndpoints (see ServiceL2StatusStatus.NotAnnounced).
	// +optional
	NotAnnounced string `json:"notAnnounced,omitempty"`
}

// BGPAnnouncementStatusStatus lists Services one node announces over BGP.
type BGPAnnouncementStatusStatus struct {
	Node string `json:"node,omitempty"`
	// ServiceCount is len(Services), those not announced included.
	ServiceCount int32 `json:"serviceCount"`
	// Services, sorted; a node announcing more Services than one object
	// holds (1,000) writes several objects, each with a part of the list.
	Services []BGPServiceAnnouncement `json:"services,omitempty"`
}

// BGPAnnouncementStatus is written by the speaker on a node: which
// Services the node announces over BGP and to which peers. One object per
// node (per 1,000 Services announced), written when its content changes,
// in Pier's namespace; select a node's with the label pier.dev/node.
// Read-only for users.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bgpannouncements
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Services",type=integer,JSONPath=`.status.serviceCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAnnouncementStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status BGPAnnouncementStatusStatus `json:"status,omitempty"`
}

// BGPAnnouncementStatusList is a list of BGPAnnouncementStatus.
//
// +kubebuilder:object:root=true
type BGPAnnouncementStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAnnouncementStatus `json:"items"`
}
