package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is pier.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "pier.dev", Version: "v1alpha1"}

// Resources are the plural names of every kind above: the CRDs Pier needs
// served before it runs (manifests' test keeps the list true).
var Resources = []string{
	"ipaddresspools", "l2advertisements", "bgppeers", "bgpadvertisements",
	"servicel2statuses", "bgpsessionstatuses", "bgpannouncementstatuses",
	"configurationstatuses", "relays",
}

var (
	// SchemeBuilder registers the kinds; AddToScheme adds them to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	AddToScheme   = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&IPAddressPool{}, &IPAddressPoolList{},
		&L2Advertisement{}, &L2AdvertisementList{},
		&BGPPeer{}, &BGPPeerList{},
		&BGPAdvertisement{}, &BGPAdvertisementList{},
		&ServiceL2Status{}, &ServiceL2StatusList{},
		&BGPSessionStatus{}, &BGPSessionStatusList{},
		&BGPAnnouncementStatus{}, &BGPAnnouncementStatusList{},
		&ConfigurationStatus{}, &ConfigurationStatusList{},
		&Relay{}, &RelayList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
