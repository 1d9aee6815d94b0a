package podlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pier-lb/pier/e2e/cluster"
)

// ErrPrerequisite means a binary the pods lab needs is missing; hack/deps.sh,
// hack/controlplane.sh and hack/nodes.sh (all run by make test) provide
// them.
var ErrPrerequisite = cluster.ErrBinariesMissing

// binaries are the programs the pods lab runs.
type binaries struct {
	KubeDir string // kubelet, kube-proxy, kubectl (hack/controlplane.sh)
	CNIDir  string // the CNI plugins and crictl (hack/nodes.sh)
	Helm    string // hack/tools.sh
}

// NodesBinDir is where hack/nodes.sh puts the CNI plugins and crictl:
// $PIER_NODES_DIR, else its cache directory.
func NodesBinDir() string {
	if d := os.Getenv("PIER_NODES_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "pier", "bin", "nodes-cni-v1.10.0-crictl-v1.37.0")
}

// HelmBinary is hack/tools.sh's helm: $PIER_TOOLS_DIR/helm.
func HelmBinary() string {
	if d := os.Getenv("PIER_TOOLS_DIR"); d != "" {
		return filepath.Join(d, "helm")
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "pier", "bin", "tools-helm-v3.22.0", "helm")
}

func findBinaries(kubeDir string) (binaries, error) {
	if kubeDir == "" {
		kubeDir = cluster.DefaultBinDir()
	}
	b := binaries{KubeDir: kubeDir, CNIDir: NodesBinDir(), Helm: HelmBinary()}
	need := []string{
		filepath.Join(b.KubeDir, "kubelet"), filepath.Join(b.KubeDir, "kube-proxy"),
		filepath.Join(b.KubeDir, "kube-controller-manager"), filepath.Join(b.KubeDir, "kube-scheduler"),
		filepath.Join(b.CNIDir, "bridge"), filepath.Join(b.CNIDir, "host-local"),
		filepath.Join(b.CNIDir, "loopback"), filepath.Join(b.CNIDir, "portmap"),
		b.Helm,
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("%w: %s (run make test's set-up: hack/controlplane.sh, hack/nodes.sh, hack/tools.sh)", ErrPrerequisite, p)
		}
	}
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "runc", "docker-registry", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return b, fmt.Errorf("%w: %s (hack/deps.sh installs it)", ErrPrerequisite, tool)
		}
	}
	return b, nil
}
