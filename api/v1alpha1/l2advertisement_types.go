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
}

// L2Advertisement announces pools on a shared L2 segment.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=l2adv
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
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
