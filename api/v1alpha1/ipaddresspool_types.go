package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// IPAddressPoolSpec lists the addresses Pier may hand to Services.
type IPAddressPoolSpec struct {
	// Addresses are CIDR prefixes ("198.51.100.0/24", "2001:db8::/64") or
	// inclusive ranges ("198.51.100.10-198.51.100.20"), IPv4 or IPv6.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=100
	Addresses []string `json:"addresses"`

	// AutoAssign lets Pier pick from this pool for Services that name no
	// pool. Off: only Services that request this pool or one of its
	// addresses get one.
	// +kubebuilder:default:=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips the .0 and .255 addresses of every IPv4 /24, which
	// some old client equipment drops.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// ServiceAllocation restricts which Services may use the pool and sets
	// its priority.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation restricts a pool to some Services.
type ServiceAllocation struct {
	// Priority orders eligible pools: lower numbers are tried first (0, the
	// default, first of all); pools of equal priority go by name.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// Namespaces by name.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelectors match namespace labels.
	// +optional
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	// ServiceSelectors match Service labels.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports the pool's usage. Counts are decimal strings:
// an IPv6 /64 holds more addresses than an int64 can count.
type IPAddressPoolStatus struct {
	AssignedIPv4  string `json:"assignedIPv4,omitempty"`
	AssignedIPv6  string `json:"assignedIPv6,omitempty"`
	AvailableIPv4 string `json:"availableIPv4,omitempty"`
	AvailableIPv6 string `json:"availableIPv6,omitempty"`
	// Conditions: Valid, written by the controller's leader. True (reason
	// Accepted): the pool is applied. False (reason Invalid): the pool is
	// left out and the message names each faulty field as the webhook
	// would ("spec.addresses[1]: ..."), e.g. an entry that is not a CIDR
	// or range, holds unusable addresses or overlaps another pool.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPAddressPool is a set of addresses for LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ippool;ippools
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Assigned IPv4",type=string,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="Assigned IPv6",type=string,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="Available IPv4",type=string,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="Available IPv6",type=string,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Valid")].message`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPool.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}
