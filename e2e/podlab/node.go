package podlab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pier-lb/pier/e2e/lab"
)

// Node is a lab host running containerd and a kubelet. Both run in one mount
// namespace of their own (the kubelet's volume mounts must be visible to the
// runtime), where Pier's hostPath directories and the Pod log directories
// are this node's own, so several nodes share the machine as separate
// machines would.
type Node struct {
	Host *lab.Host
	Name string
	// Dir holds the node's configuration, runtime state and logs.
	Dir string
	// IP is the node's address on the L2 segment (its InternalIP).
	IP netip.Addr
	// PodCIDR is the node's Pod range.
	PodCIDR netip.Prefix
	// CgroupRoot is the kubelet's cgroup root in every v1 hierarchy.
	CgroupRoot string

	proc *lab.Process
}

// hostPaths are directories that Pods (Pier's hostPath volumes) or the
// kubelet use at fixed places; each node gets its own copy (startScript
// binds the same list). The kubelet's device-plugin socket does not
// follow its root dir: shared, kubelets starting together raced for it
// ("bind: address already in use").
var hostPaths = []string{"/var/lib/pier", "/var/lib/pier-relay", "/var/log/pods", "/var/log/containers", "/var/lib/kubelet/device-plugins"}

// v1Hierarchies are the cgroup v1 controllers the kubelet and runc use.
var v1Hierarchies = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd"}

// nodeConfig is what a node's files are made from.
type nodeConfig struct {
	bins           binaries
	caFile         string
	kubeconfig     string // the kubelet's (system:node:NAME)
	registry       string // host:port the nodes pull from
	sandboxImage   string
	clusterDNSless bool
}

func (n *Node) path(p ...string) string { return filepath.Join(append([]string{n.Dir}, p...)...) }

// writeFiles writes containerd's, the CNI's and the kubelet's configuration.
func (n *Node) writeFiles(c nodeConfig) error {
	for _, d := range []string{"cni/net.d", "cni/ipam", "certs.d/" + c.registry, "kubelet", "runc", "volume-plugins"} {
		if err := os.MkdirAll(n.path(d), 0o755); err != nil {
			return err
		}
	}
	for _, p := range hostPaths {
		if err := os.MkdirAll(n.path("host", p), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"containerd.toml":                       n.containerdConfig(c),
		"certs.d/" + c.registry + "/hosts.toml": registryHosts(c.registry),
		"cni/net.d/10-lab.conflist":             n.cniConfig(),
		"kubelet.yaml":                          n.kubeletConfig(c),
		"resolv.conf":                           "# the lab has no DNS\n",
		"start.sh":                              startScript,
	}
	for name, data := range files {
		if err := os.WriteFile(n.path(name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) containerdConfig(c nodeConfig) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[9]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[10]q
`, n.path("containerd/root"), n.path("containerd/state"), n.socket(), n.socket()+".ttrpc",
		c.sandboxImage, n.path("runc"), c.bins.CNIDir, n.path("cni/net.d"), n.path("certs.d"), n.path("containerd/opt"))
}

func (n *Node) socket() string { return n.path("containerd.sock") }

// registryHosts makes containerd pull from the lab registry over plain HTTP.
func registryHosts(registry string) string {
	return fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, registry)
}

// cniConfig is a bridge with the node's Pod range, masquerading what leaves
// it (nftables, as the lab has no iptables), and port mappings.
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables", "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "backend": "nftables", "capabilities": {"portMappings": true}}
  ]
}
`, n.path("cni/ipam"), n.PodCIDR)
}

// kubeletConfig runs the kubelet on this machine's cgroup v1 hierarchies
// (failCgroupV1: false), with its own cgroup root, ports on the node's
// namespace, no swap or kernel-default checks, client certificates
// checked against the cluster CA, and eviction thresholds low enough that
// a shared disk does not evict the lab's Pods.
func (n *Node) kubeletConfig(c nodeConfig) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: unix://%[2]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[3]q}
authorization:
  mode: AlwaysAllow
clusterDomain: cluster.local
resolvConf: %[4]q
failSwapOn: false
protectKernelDefaults: false
localStorageCapacityIsolation: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
maxPods: 60
podPidsLimit: -1
volumePluginDir: %[5]q
shutdownGracePeriod: 0s
nodeStatusUpdateFrequency: 4s
`, n.CgroupRoot, n.socket(), c.caFile, n.path("resolv.conf"), n.path("volume-plugins"))
}

// startScript runs inside the node's namespace, in a mount namespace of its
// own (`ip netns exec` makes one): it binds the machine's cgroups and the
// node's own copies of the shared paths, then runs containerd and the
// kubelet.
const startScript = `set -eu
dir=$1 bindir=$2 name=$3 ip=$4
# ip netns exec mounted a fresh /sys for the namespace, without the cgroup
# hierarchies under it: mount the machine's again (the same hierarchies).
mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
	mkdir -p /sys/fs/cgroup/$c
	mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
for p in /var/lib/pier /var/lib/pier-relay /var/log/pods /var/log/containers /var/lib/kubelet/device-plugins; do
	mkdir -p "$p"
	mount --bind "$dir/host$p" "$p"
done
# A node restarted after a kill finds its dead containerd's socket: the
# wait below must see the new one.
rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc"
containerd --config "$dir/containerd.toml" >>"$dir/containerd.log" 2>&1 &
for _ in $(seq 200); do [ -S "$dir/containerd.sock" ] && break; sleep 0.05; done
exec "$bindir/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
	--root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
	--hostname-override "$name" --node-ip "$ip" --v=1 >>"$dir/kubelet.log" 2>&1
`

// makeCgroups creates the kubelet's cgroup root in every v1 hierarchy
// (cpuset children start with no CPUs or memory nodes: copy the parent's).
func (n *Node) makeCgroups() error {
	for _, h := range v1Hierarchies {
		d := filepath.Join("/sys/fs/cgroup", h, n.CgroupRoot)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
		if h != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
				return fmt.Errorf("cgroup %s/%s: %w", d, f, err)
			}
		}
	}
	return nil
}

// start runs the node's containerd and kubelet.
func (n *Node) start(kubeletDir string) error {
	p, err := n.Host.Start("sh", n.path("start.sh"), n.Dir, kubeletDir, n.Name, n.IP.String())
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// Stop stops the node as a machine that loses power would: kubelet,
// containerd and every container on it are killed at once.
func (n *Node) Stop() {
	if n.proc != nil {
		_ = n.proc.Signal(syscall.SIGKILL)
		<-n.proc.Done()
	}
	n.killContainers()
}

// killContainers kills every process in the node's cgroups and the
// containerd shims serving them, then removes the cgroups.
func (n *Node) killContainers() {
	lab.KillShims(n.socket())
	lab.RemoveCgroups(strings.TrimPrefix(n.CgroupRoot, "/"))
	lab.KillShims(n.socket())
}

// Logs returns the tails of the node's containerd and kubelet logs.
func (n *Node) Logs(lines int) string {
	var b strings.Builder
	for _, f := range []string{"kubelet.log", "containerd.log"} {
		data, _ := os.ReadFile(n.path(f))
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "--- %s %s (last %d lines) ---\n%s\n", n.Name, f, len(all), strings.Join(all, "\n"))
	}
	return b.String()
}

// waitProcess reports an early exit of the node's start script.
func (n *Node) exited() error {
	select {
	case <-n.proc.Done():
		return fmt.Errorf("node %s: kubelet exited: %s", n.Name, n.proc.OutputTail(20))
	default:
		return nil
	}
}
