package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// L2AdvertisementSpec says which pools are announced with ARP/NDP, from
// which nodes and on which interfaces. No pools and no pool selectors means
// every pool.
type L2AdvertisementSpec struct {
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	// NodeSelectors limit the nodes that may answer; none means all.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	// Interfaces limit where the nodes answer; none means any interface
	// whose subnet holds the address.
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`
	// ServiceSelectors limit the Services announced; none means all.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
	// RequireReadyEndpoints, when true, stops announcing a Service's
	// addresses through this advertisement while the Service has no ready
	// endpoint anywhere in the cluster, whatever its
	// externalTrafficPolicy, and announces them again as soon as one is
	// ready. An EndpointSlice endpoint counts as ready when its ready
	// condition is true or unset and it is not terminating. While the API
	// server is unreachable the speakers keep announcing what they
	// announced last. Default false: announced whether or not endpoints
	// are ready (with externalTrafficPolicy Local, only from nodes that
	// have a ready endpoint, either way).
	// +optional
	RequireReadyEndpoints bool `json:"requireReadyEndpoints,omitempty"`
	// Spread says how the addresses this advertisement announces are
	// shared out among the nodes that may answer for them (one node per
	// address). Hash (the default): each address goes to the node that a
	// hash of address and node name ranks first, so owners spread at
	// random and one node may own several addresses while another owns
	// none. Balanced: no node owns more than its share (the addresses
	// divided by the nodes, rounded up) while the others have room, each
	// address going to the node highest in its hash ranking that has room.
	// Every speaker computes the same owners from what it sees, without
	// asking the others; adding a Service or a node moves few addresses,
	// and the addresses of a node that fails move to the others as with
	// Hash. An address some Balanced advertisement selects is balanced
	// among all addresses so selected.
	// +kubebuilder:validation:Enum=Hash;Balanced
	// +optional
	Spread L2Spread `json:"spread,omitempty"`
}

// L2Spread is how an L2Advertisement spreads its addresses over nodes.
type L2Spread string

// The values of L2AdvertisementSpec.Spread.
const (
	L2SpreadHash     L2Spread = "Hash"
	L2SpreadBalanced L2Spread = "Balanced"
)

// L2Advertisement announces pools on a shared L2 segment.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=l2adv
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Spread",type=string,JSONPath=`.spec.spread`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec L2AdvertisementSpec `json:"spec,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisement.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}
