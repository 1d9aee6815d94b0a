package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Labels on the status objects Pier's speakers write, for selecting them.
const (
	LabelServiceName      = "pier.dev/service-name"
	LabelServiceNamespace = "pier.dev/service-namespace"
	LabelNode             = "pier.dev/node"
)

// ServiceL2StatusStatus says which node announces which of a Service's
// addresses, on which interfaces.
type ServiceL2StatusStatus struct {
	Node             string   `json:"node,omitempty"`
	ServiceName      string   `json:"serviceName,omitempty"`
	ServiceNamespace string   `json:"serviceNamespace,omitempty"`
	Addresses        []string `json:"addresses,omitempty"`
	Interfaces       []string `json:"interfaces,omitempty"`
	// NotAnnounced, when set, says why the node does not answer for the
	// addresses listed, which it would answer for otherwise:
	// NoReadyEndpoints (the Service has no ready endpoint anywhere, and an
	// advertisement requires one or its externalTrafficPolicy is Local).
	// +optional
	NotAnnounced string `json:"notAnnounced,omitempty"`
}

// NotAnnouncedNoReadyEndpoints is the reason a Service without a ready
// endpoint is not announced.
const NotAnnouncedNoReadyEndpoints = "NoReadyEndpoints"

// ServiceL2Status is written by the speaker that answers ARP/NDP for a
// Service's addresses: one object per Service and announcing node, in
// Pier's namespace. A Service that is not announced for want of ready
// endpoints has one too, by the node that would answer, saying so
// (notAnnounced). Read-only for users.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=l2status
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.serviceNamespace`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.status.addresses`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.status.interfaces`
// +kubebuilder:printcolumn:name="Not Announced",type=string,JSONPath=`.status.notAnnounced`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceL2Status struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ServiceL2StatusStatus `json:"status,omitempty"`
}

// ServiceL2StatusList is a list of ServiceL2Status.
//
// +kubebuilder:object:root=true
type ServiceL2StatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceL2Status `json:"items"`
}
