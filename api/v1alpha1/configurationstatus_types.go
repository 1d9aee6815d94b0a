package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// LabelComponent names the Pier daemon that wrote a ConfigurationStatus.
const LabelComponent = "pier.dev/component"

// Components that write a ConfigurationStatus.
const (
	ComponentSpeaker = "speaker"
	ComponentRelay   = "relay"
)

// ConfigurationProblem is one fault in one configuration object, as
// config.Parse words it.
type ConfigurationProblem struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Field is the field at fault (spec.address); empty for the whole
	// object.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// ConfigurationStatusStatus says whether one daemon on one node took the
// whole configuration.
type ConfigurationStatusStatus struct {
	Node      string `json:"node,omitempty"`
	Component string `json:"component,omitempty"`
	// Valid is true when every object parsed; otherwise the objects in
	// Problems are left out and the rest applies.
	Valid bool `json:"valid"`
	// Summary is the first problem, and how many more there are.
	// +optional
	Summary  string                 `json:"summary,omitempty"`
	Problems []ConfigurationProblem `json:"problems,omitempty"`
	// LastChange is when Valid or Problems last changed.
	// +optional
	LastChange *metav1.Time `json:"lastChange,omitempty"`
}

// ConfigurationStatus is written by a Pier daemon (the speaker, the relay
// agent) on a node when what it makes of the configuration changes: one
// object per daemon and node, in Pier's namespace. An object left out for
// a fault is named here with the field at fault, so it is visible without
// reading logs. Read-only for users.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=configstatus
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Component",type=string,JSONPath=`.status.component`
// +kubebuilder:printcolumn:name="Valid",type=boolean,JSONPath=`.status.valid`
// +kubebuilder:printcolumn:name="Problem",type=string,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Changed",type=date,JSONPath=`.status.lastChange`
type ConfigurationStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ConfigurationStatusStatus `json:"status,omitempty"`
}

// ConfigurationStatusList is a list of ConfigurationStatus.
//
// +kubebuilder:object:root=true
type ConfigurationStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConfigurationStatus `json:"items"`
}
