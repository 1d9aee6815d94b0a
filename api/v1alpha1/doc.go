// Package v1alpha1 holds Pier's custom resources, group pier.dev. The kinds
// follow what MetalLB users know (IPAddressPool, L2Advertisement, BGPPeer,
// BGPAdvertisement) so that moving over is mechanical. The objects live in
// the namespace Pier runs in. deepcopy and the CRD YAML in manifests/crd are
// generated: run `make generate` after editing.
//
// +kubebuilder:object:generate=true
// +groupName=pier.dev
package v1alpha1
