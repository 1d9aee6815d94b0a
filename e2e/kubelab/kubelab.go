// Package kubelab joins the two halves of the test world: a lab site
// (network namespaces) and a real control plane. The API server runs in the
// root namespace on loopback and is published on the site's management
// network, each lab host becomes a Node object, and node processes get a
// kubeconfig that reaches the API server over the management link, as a
// kubelet's node would.
package kubelab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
)

// APIPort is where the API server is published on the management network.
const APIPort = 6443

// Options configures Up. The zero value is valid.
type Options struct {
	Nodes   int    // default 3
	Prefix  string // lab prefix; default random
	Cluster cluster.Options
	// ControllerBinary, when set, is a pier-controller executable: Up then
	// installs Pier's CRDs, namespace and L2 pool and runs the controller on
	// node1.
	ControllerBinary string
	// SpeakerBinary, when set with ControllerBinary, is a pier-speaker
	// executable run on every node, announcing the pool on the L2 segment;
	// SpeakerArgs are extra flags for every speaker.
	SpeakerBinary string
	SpeakerArgs   []string
	// KubeProxy runs kube-proxy (nftables mode, built by
	// hack/controlplane.sh beside kube-apiserver) on every node, so
	// Services' NodePorts and LoadBalancer addresses are translated to
	// their endpoints as in a real cluster.
	KubeProxy bool
	// GatewayAPI installs the Gateway API CRDs (standard channel) with
	// Pier's and runs the controller with --gateway-api.
	GatewayAPI bool
	// SelfRegisteringNodes leaves the Node objects to the nodes' kubelets
	// (the pods lab) instead of creating them.
	SelfRegisteringNodes bool
	Logger               *slog.Logger
}

// Env is a running site with its control plane.
type Env struct {
	Lab     *lab.Lab
	Site    *lab.Site
	Cluster *cluster.Cluster
	Client  kubernetes.Interface
	// Pier is a controller-runtime client that also knows Pier's kinds.
	Pier       client.Client
	mu         sync.Mutex
	controller *lab.Process // see ControllerProcess
	paused     bool         // see PauseController
	// Speakers are the pier-speaker processes, by node.
	Speakers    []*lab.Process
	speakerArgs []string
	speakerBin  string
	speakerKey  string
	// KubeProxies are the kube-proxy processes, by node (Options.KubeProxy).
	KubeProxies  []*lab.Process
	kubeProxyBin string
	closing      chan struct{}
	closeOnce    sync.Once
	// APIServer is the API server's address on the management network.
	APIServer netip.AddrPort
	// NodeKubeconfig is the kubeconfig node processes use (it reaches the
	// API server through the management link).
	NodeKubeconfig string
}

// Up starts the control plane, builds the site and registers its nodes.
// On error everything already made is removed.
func Up(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Env{closing: make(chan struct{})}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Lab, err = lab.New(lab.Options{Prefix: opts.Prefix, Logger: opts.Logger}); err != nil {
		return nil, err
	}
	opts.Cluster.ServingAddrs = append(opts.Cluster.ServingAddrs, lab.MgmtGateway)
	if opts.Cluster.Logger == nil {
		opts.Cluster.Logger = opts.Logger
	}
	if e.Cluster, err = cluster.Start(ctx, opts.Cluster); err != nil {
		return nil, err
	}
	if e.Site, err = e.Lab.BuildSite(lab.SiteOptions{Nodes: opts.Nodes}); err != nil {
		return nil, err
	}
	if err = e.publish(); err != nil {
		return nil, err
	}
	if e.Client, err = kubernetes.NewForConfig(e.Cluster.Config); err != nil {
		return nil, err
	}
	if e.Pier, err = newPierClient(e.Cluster.Config); err != nil {
		return nil, err
	}
	if !opts.SelfRegisteringNodes {
		if err = registerNodes(ctx, e.Client, e.Site); err != nil {
			return nil, err
		}
	}
	if opts.KubeProxy {
		if err = e.InstallKubeProxies(ctx, opts.Cluster.BinDir); err != nil {
			return nil, err
		}
	}
	if opts.ControllerBinary != "" {
		if err = e.installPier(ctx, opts.ControllerBinary, opts.GatewayAPI); err != nil {
			return nil, err
		}
	}
	if opts.ControllerBinary != "" && opts.SpeakerBinary != "" {
		e.speakerArgs = opts.SpeakerArgs
		if err = e.installSpeakers(ctx, opts.SpeakerBinary); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Env) publish() error {
	host := e.Cluster.Config.Host[len("https://"):]
	var err error
	if e.APIServer, err = e.Lab.PublishToManagement(APIPort, host); err != nil {
		return err
	}
	e.NodeKubeconfig = filepath.Join(e.Cluster.Dir, "kubeconfig-nodes")
	server := "https://" + net.JoinHostPort(e.APIServer.Addr().String(), strconv.Itoa(int(e.APIServer.Port())))
	return e.Cluster.WriteKubeconfig(e.NodeKubeconfig, server)
}

func newPierClient(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// Close removes the lab and stops the control plane.
func (e *Env) Close() error {
	e.closeOnce.Do(func() { close(e.closing) })
	var errs []error
	if e.Lab != nil {
		errs = append(errs, e.Lab.Close())
	}
	if e.Cluster != nil {
		e.Cluster.Stop()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down lab: %w", err)
	}
	return nil
}
