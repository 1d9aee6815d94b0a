// Package install tests what users install: the kustomize base and
// overlays, the Helm chart with default and site values, and the manifests
// the kind lab applies, against a real kube-apiserver (server-side dry run
// after the CRDs are installed for real); the RBAC of each component as that
// component's ServiceAccount (kubectl auth can-i, and the real
// pier-controller running on its own token); and the kind lab script
// (shellcheck). The tests need the control plane (hack/controlplane.sh) and
// helm (hack/tools.sh); make test builds both.
package install
