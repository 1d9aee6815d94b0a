// Package podlab makes a lab site a real Kubernetes cluster, as users run
// Pier: containerd and a kubelet on every node (self-registering Nodes),
// kube-controller-manager and kube-scheduler beside the API server,
// kube-proxy on every node, the reference CNI plugins for Pod networking,
// and a registry on the management network that is the only place images
// come from. Pier is then installed by its own chart or kustomize base.
package podlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/teardown"
	"github.com/pier-lb/pier/internal/release"
)

// RegistryPort is where the lab registry is published on the management
// network: nodes pull from 192.0.2.1:5000.
const RegistryPort = 5000

// kubernetesServiceIP is the first address of the lab's Service range, the
// kubernetes Service's ClusterIP, which Pods reach the API server at.
var kubernetesServiceIP = netip.MustParseAddr("198.19.240.1")

// serviceCIDR is the lab's IPv4 Service range (e2e/cluster's).
var serviceCIDR = netip.MustParsePrefix("198.19.240.0/20")

// PodCIDR is node i's (1-based) Pod range: 198.19.i.0/24, inside the lab's
// benchmark range and outside its Service range.
func PodCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 0}), 24)
}

// Options configures Up. The zero value is valid.
type Options struct {
	Nodes  int    // default 3
	Prefix string // lab prefix; default random
	// PierTags are the tags of Pier's image to build and push (default
	// ["lab"]); a second tag is what an upgrade moves to.
	PierTags []string
	Logger   *slog.Logger
}

// Env is a running pods cluster.
type Env struct {
	*kubelab.Env
	Nodes []*Node
	// Registry is where nodes pull from (the chart's image.registry).
	Registry string
	// PushRegistry is the same registry on the root namespace's loopback.
	PushRegistry string
	// Dir holds the nodes' state, the registry's data and logs.
	Dir  string
	Root string // the module root (charts/, manifests/)

	bins       binaries
	reg        *registry
	egress     *egress
	unregister func()
	log        *slog.Logger
}

// Up builds the cluster and returns once every node is Ready and kube-proxy
// runs on each. On error everything already made is removed.
func Up(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if len(opts.PierTags) == 0 {
		opts.PierTags = []string{"lab"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Env{log: opts.Logger.With("component", "podlab")}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.bins, err = findBinaries(""); err != nil {
		return nil, err
	}
	if e.Root, err = release.Root(); err != nil {
		return nil, err
	}
	if e.Dir, err = os.MkdirTemp("", "pier-podlab-"); err != nil {
		return nil, err
	}
	// Interrupted (SIGINT, SIGTERM): kill the nodes' containers and remove
	// their state; the lab and the control plane remove themselves.
	dir := e.Dir
	e.unregister = teardown.Register(func() { e.stopNodes(); os.RemoveAll(dir) })
	start := time.Now()
	if err = e.startControlPlane(ctx, opts); err != nil {
		return nil, err
	}
	e.log.Info("control plane up", "took", time.Since(start))
	if err = e.startRegistry(ctx, opts.PierTags); err != nil {
		return nil, err
	}
	e.log.Info("images pushed", "took", time.Since(start))
	if err = e.startNodes(ctx); err != nil {
		return nil, err
	}
	e.log.Info("nodes ready", "took", time.Since(start))
	if err = e.InstallKubeProxies(ctx, e.bins.KubeDir); err != nil {
		return nil, err
	}
	e.log.Info("kube-proxy synced", "took", time.Since(start))
	return e, nil
}

func (e *Env) startControlPlane(ctx context.Context, opts Options) error {
	var err error
	if e.egress, err = startEgress(e.Dir); err != nil {
		return err
	}
	egressCfg, err := e.egress.writeConfig(e.Dir)
	if err != nil {
		return err
	}
	ko := kubelab.Options{Nodes: opts.Nodes, Prefix: opts.Prefix, Logger: opts.Logger, SelfRegisteringNodes: true}
	ko.Cluster.BinDir = e.bins.KubeDir
	ko.Cluster.Controllers = true
	ko.Cluster.ServingAddrs = []netip.Addr{kubernetesServiceIP}
	ko.Cluster.APIServerFlags = []string{
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		// Webhooks and aggregated APIs are called at their Pods' addresses
		// (the API server has no kube-proxy), through the egress proxy.
		"--enable-aggregator-routing=true",
		"--egress-selector-config-file=" + egressCfg,
	}
	if e.Env, err = kubelab.Up(ctx, ko); err != nil {
		return err
	}
	mgmt, err := e.Lab.ManagementHost()
	if err != nil {
		return err
	}
	e.egress.setDialer(e.dialFromManagement(mgmt))
	if err := e.routePods(mgmt); err != nil {
		return err
	}
	return e.publishAPIServerEndpoints(ctx)
}

// dialFromManagement dials from the management host, where the API server
// reaches kubelets by node name (their Hostname address): a node's name
// stands for its management address.
func (e *Env) dialFromManagement(mgmt *lab.Host) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		for i, n := range e.Site.Nodes {
			if n.Name == host {
				addr = net.JoinHostPort(e.Site.NodeMgmt[i].String(), port)
			}
		}
		return mgmt.Dial(ctx, network, addr)
	}
}

// routePods routes every node's Pod range to it from the other nodes and
// from the management host, as a flat Pod network (kindnet's routes).
func (e *Env) routePods(mgmt *lab.Host) error {
	for j := range e.Site.Nodes {
		via := e.Site.NodeMgmt[j]
		if err := mgmt.AddRoute(PodCIDR(j+1), via); err != nil {
			return err
		}
		for i, n := range e.Site.Nodes {
			if i == j {
				continue
			}
			if err := n.AddRoute(PodCIDR(j+1), via); err != nil {
				return err
			}
		}
	}
	for _, n := range e.Site.Nodes {
		if err := n.EnableForwarding(); err != nil {
			return err
		}
		// Host-network Pods (speakers, relays) reach the kubernetes Service
		// from their management address: without this route the node's
		// route to client networks picks its segment address, which the
		// API server's side cannot answer.
		if err := n.AddRoute(serviceCIDR, lab.MgmtGateway); err != nil {
			return err
		}
	}
	return nil
}

// publishAPIServerEndpoints points the kubernetes Service at the API
// server's published address, as the API server's own endpoint reconciler
// would if it listened on the management network.
func (e *Env) publishAPIServerEndpoints(ctx context.Context) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: "kubernetes",
			discoveryv1.LabelManagedBy:   "pier-podlab",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{e.APIServer.Addr().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		}},
		Ports: []discoveryv1.EndpointPort{{
			Name: ptr.To("https"), Port: ptr.To(int32(e.APIServer.Port())), Protocol: ptr.To(corev1.ProtocolTCP),
		}},
	}
	_, err := e.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubernetes EndpointSlice: %w", err)
	}
	return nil
}

func (e *Env) startRegistry(ctx context.Context, tags []string) error {
	var err error
	if e.reg, err = startRegistry(ctx, e.Dir); err != nil {
		return err
	}
	e.PushRegistry = e.reg.local
	at, err := e.Lab.PublishToManagement(RegistryPort, e.reg.local)
	if err != nil {
		return err
	}
	e.Registry = at.String()
	bin := filepath.Join(e.Dir, "image-bin")
	if err := buildImageInputs(e.Root, bin); err != nil {
		return err
	}
	if err := pushLabImage(bin, e.PushRegistry); err != nil {
		return err
	}
	for _, tag := range tags {
		if err := pushPierImage(bin, e.Dir, e.PushRegistry, tag); err != nil {
			return err
		}
	}
	return nil
}

// startNodes starts containerd and a kubelet on every node and waits until
// each has registered and is Ready.
func (e *Env) startNodes(ctx context.Context) error {
	for i, h := range e.Site.Nodes {
		v4, _ := lab.NodeAddrs(i + 1)
		n := &Node{
			Host: h, Name: h.Name, Dir: filepath.Join(e.Dir, h.Name),
			IP: v4.Addr(), PodCIDR: PodCIDR(i + 1),
			CgroupRoot: "/" + h.NS,
		}
		e.Nodes = append(e.Nodes, n)
		if err := e.prepareNode(n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		if err := n.start(e.bins.KubeDir); err != nil {
			return err
		}
	}
	for _, n := range e.Nodes {
		if err := e.WaitNodeReady(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) prepareNode(n *Node) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	kc := filepath.Join(n.Dir, "kubelet.kubeconfig")
	if err := e.writeNodeKubeconfig(n.Name, kc); err != nil {
		return err
	}
	c := nodeConfig{bins: e.bins, caFile: e.Cluster.CAFile, kubeconfig: kc,
		registry: e.Registry, sandboxImage: e.Registry + "/" + LabImage}
	if err := n.writeFiles(c); err != nil {
		return err
	}
	return n.makeCgroups()
}

// writeNodeKubeconfig writes a kubeconfig for the kubelet of node name, as
// system:node:name in system:nodes (the Node authorizer's identity).
func (e *Env) writeNodeKubeconfig(name, path string) error {
	cert, key, err := e.Cluster.IssueClient("system:node:"+name, "system:nodes")
	if err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["lab"] = &clientcmdapi.Cluster{
		Server:                   "https://" + net.JoinHostPort(e.APIServer.Addr().String(), fmt.Sprint(e.APIServer.Port())),
		CertificateAuthorityData: e.Cluster.Config.CAData,
	}
	kc.AuthInfos["kubelet"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	kc.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "kubelet"}
	kc.CurrentContext = "lab"
	return clientcmd.WriteToFile(*kc, path)
}

// WaitNodeReady waits until n's Node object says Ready.
func (e *Env) WaitNodeReady(ctx context.Context, n *Node) error {
	return e.waitNodeReadySince(ctx, n, time.Time{})
}

// waitNodeReadySince waits until n's Node says Ready in a heartbeat sent
// after since (a restarted node's, not the dead kubelet's last word).
func (e *Env) waitNodeReadySince(ctx context.Context, n *Node, since time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := n.exited(); err != nil {
			return false, err
		}
		node, err := e.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				last = fmt.Sprintf("Ready=%s %s: %s (heartbeat %s)", c.Status, c.Reason, c.Message, c.LastHeartbeatTime)
				return c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(since), nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready: %w (last: %s)\n%s", n.Name, err, last, n.Logs(40))
	}
	return nil
}

// stopNodes kills every node's kubelet, containerd and containers.
func (e *Env) stopNodes() {
	for _, n := range e.Nodes {
		n.Stop()
	}
}

// Close removes everything Up made.
func (e *Env) Close() error {
	e.stopNodes()
	var errs []error
	if e.Env != nil {
		errs = append(errs, e.Env.Close())
	}
	if e.reg != nil {
		errs = append(errs, e.reg.Close())
	}
	if e.egress != nil {
		errs = append(errs, e.egress.Close())
	}
	if e.unregister != nil {
		e.unregister()
	}
	if e.Dir != "" {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// Node returns the node named name, or nil.
func (e *Env) Node(name string) *Node {
	for _, n := range e.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// RestartNode starts a stopped node's containerd and kubelet again (its
// cgroup root anew) and waits until it is Ready.
func (e *Env) RestartNode(ctx context.Context, n *Node) error {
	if err := n.makeCgroups(); err != nil {
		return err
	}
	// Heartbeats carry whole seconds.
	since := time.Now().Truncate(time.Second)
	if err := n.start(e.bins.KubeDir); err != nil {
		return err
	}
	if err := e.waitNodeReadySince(ctx, n, since); err != nil {
		return err
	}
	return e.waitPodsRestarted(ctx, n, since)
}

// waitPodsRestarted waits until every Pod on n runs containers started
// since the node came back and is Ready. Until then the API still shows
// the Pods of before the stop as running (the node was not down long
// enough to be marked NotReady), so a rollout status says nothing: a step
// after a restart would otherwise begin while the node's servers, speaker
// and relay are still coming back.
func (e *Env) waitPodsRestarted(ctx context.Context, n *Node, since time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		pods, err := e.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, p := range pods.Items {
			if why := notBack(&p, since); why != "" {
				last = p.Namespace + "/" + p.Name + ": " + why
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("Pods on %s not back after its restart: %w (last: %s)", n.Name, err, last)
	}
	return nil
}

// notBack says why p has not come back since a restart at since: a
// container not running, or running since before, or p not Ready. Pods
// being deleted or finished are not waited for.
func notBack(p *corev1.Pod, since time.Time) string {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return ""
	}
	if len(p.Status.ContainerStatuses) == 0 {
		return "no container status yet"
	}
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Running == nil:
			return "container " + c.Name + " not running"
		case c.State.Running.StartedAt.Time.Before(since):
			return "container " + c.Name + " not restarted yet"
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return ""
		}
	}
	return "not Ready"
}
