// Package cluster runs a real Kubernetes control plane (etcd and
// kube-apiserver, built from source by hack/controlplane.sh) for tests and
// the lab: RBAC on, an admin identity in system:masters, free loopback ports
// and a private temporary directory, so several can run at once.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pier-lb/pier/e2e/teardown"
)

// Versions of the control plane this package expects; hack/controlplane.sh
// builds the same ones.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.6.8"
)

// Service ClusterIPs come from documentation/benchmark ranges only: nothing
// ever routes to them in the lab, but they must not collide with real ones.
const serviceCIDRs = "198.19.240.0/20,2001:db8:ffff::/112"

// ErrBinariesMissing means kube-apiserver or etcd has not been built; run
// hack/controlplane.sh (make test does).
var ErrBinariesMissing = errors.New("control-plane binaries missing")

// Options configures Start. The zero value is valid.
type Options struct {
	// BinDir holds kube-apiserver and etcd. Default: $PIER_CONTROLPLANE_DIR,
	// else the cache directory hack/controlplane.sh fills.
	BinDir string
	// BindAddress is where the API server listens. Default 127.0.0.1; the
	// lab passes its management gateway so node namespaces can reach it.
	BindAddress netip.Addr
	// ServingAddrs are extra addresses the serving certificate covers, such
	// as the lab's management gateway where the API server is published.
	ServingAddrs []netip.Addr
	// APIServerFlags are appended to the API server's command line; a flag
	// given here (--name=value) replaces the default of the same name.
	APIServerFlags []string
	// Controllers also runs kube-controller-manager and kube-scheduler (from
	// BinDir), as a cluster with kubelets needs: Pods get scheduled,
	// Deployments and DaemonSets get Pods, Services get EndpointSlices.
	Controllers bool
	// ReadyTimeout bounds the wait for /readyz. Default 90s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Cluster is a running control plane.
type Cluster struct {
	// Config reaches the API server as the admin identity.
	Config *rest.Config
	// Kubeconfig is a self-contained kubeconfig file for the same identity.
	Kubeconfig string
	// Dir holds the data, certificates and logs; Stop removes it.
	Dir string

	// CAFile is the cluster CA's certificate (PEM); nodes trust it.
	CAFile string

	etcd, apiserver *process
	controllers     []*process // kube-controller-manager, kube-scheduler
	pki             *pki
	unregister      func()
	stopOnce        sync.Once
	log             *slog.Logger
}

// APIServerPID is the kube-apiserver's process id, for benchmarks that
// split the CPU a workload costs between Pier and the API server.
func (c *Cluster) APIServerPID() int { return c.apiserver.cmd.Process.Pid }

// DefaultBinDir is where hack/controlplane.sh puts the binaries.
func DefaultBinDir() string {
	if d := os.Getenv("PIER_CONTROLPLANE_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "pier", "bin", "kube-"+KubeVersion+"-etcd-"+EtcdVersion)
}

func (o *Options) defaults() error {
	if o.BinDir == "" {
		o.BinDir = DefaultBinDir()
	}
	bins := []string{"etcd", "kube-apiserver"}
	if o.Controllers {
		bins = append(bins, "kube-controller-manager", "kube-scheduler")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("%w: %s in %s (run hack/controlplane.sh)", ErrBinariesMissing, b, o.BinDir)
		}
	}
	if !o.BindAddress.IsValid() {
		o.BindAddress = netip.MustParseAddr("127.0.0.1")
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// errPortTaken means another process bound a port between our choosing and
// binding it; Start retries with new ports.
var errPortTaken = errors.New("port taken")

// Start runs etcd and kube-apiserver and returns once /readyz answers.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, opts)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return c, err
		}
		opts.Logger.Warn("control plane port taken, retrying", "attempt", attempt, "err", err)
	}
}

func start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "pier-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, log: opts.Logger.With("component", "cluster", "dir", dir)}
	c.unregister = teardown.Register(c.stop)
	defer func() {
		if err != nil {
			tails := c.LogTails(40)
			if strings.Contains(tails, "address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			err = fmt.Errorf("%w\n%s", err, tails)
			c.stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	if c.etcd, err = startEtcd(opts.BinDir, dir, ports[0], ports[1]); err != nil {
		return nil, err
	}
	serve := append([]netip.Addr{opts.BindAddress, netip.MustParseAddr("127.0.0.1")}, opts.ServingAddrs...)
	p, err := writePKI(dir, serve)
	if err != nil {
		return nil, err
	}
	c.pki, c.CAFile = p, p.CACert
	host := net.JoinHostPort(opts.BindAddress.String(), strconv.Itoa(ports[2]))
	args := apiServerArgs(opts, p, ports[0], ports[2])
	if c.apiserver, err = startProcess(filepath.Join(opts.BinDir, "kube-apiserver"), filepath.Join(dir, "kube-apiserver.log"), args...); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{
		Host: "https://" + host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caPEM, CertData: p.adminCertPEM, KeyData: p.adminKeyPEM,
		},
		QPS: 200, Burst: 400,
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err = c.WriteKubeconfig(c.Kubeconfig, c.Config.Host); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, opts.ReadyTimeout); err != nil {
		return nil, err
	}
	if opts.Controllers {
		if err := c.startControllers(ctx, opts.BinDir); err != nil {
			return nil, err
		}
	}
	c.log.Info("control plane ready", "host", c.Config.Host)
	return c, nil
}

func apiServerArgs(opts Options, p *pki, etcdPort, port int) []string {
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=" + opts.BindAddress.String(),
		"--advertise-address=" + opts.BindAddress.String(),
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + p.ServingCert,
		"--tls-private-key-file=" + p.ServingKey,
		"--client-ca-file=" + p.CACert,
		// Kubelets (the pods lab) trust the lab CA: logs and exec work.
		"--kubelet-client-certificate=" + p.AdminCert,
		"--kubelet-client-key=" + p.AdminKey,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.SAKey,
		"--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=" + serviceCIDRs,
		// The kubernetes Service's endpoints would have to be a routable
		// address; tests bind loopback, and nothing here needs them.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	return append(withoutOverridden(args, opts.APIServerFlags), opts.APIServerFlags...)
}

// withoutOverridden drops the defaults that extra sets again: list flags
// such as --authorization-mode would otherwise add up instead of being
// replaced.
func withoutOverridden(defaults, extra []string) []string {
	set := map[string]bool{}
	for _, f := range extra {
		name, _, _ := strings.Cut(f, "=")
		set[name] = true
	}
	var out []string
	for _, f := range defaults {
		if name, _, _ := strings.Cut(f, "="); !set[name] {
			out = append(out, f)
		}
	}
	return out
}

func startEtcd(binDir, dir string, clientPort, peerPort int) (*process, error) {
	client := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	return startProcess(filepath.Join(binDir, "etcd"), filepath.Join(dir, "etcd.log"),
		"--name=pier",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=pier="+peer,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
}

// WriteKubeconfig writes a self-contained admin kubeconfig that reaches the
// API server at server (an https:// URL), e.g. as published in a lab.
func (c *Cluster) WriteKubeconfig(path, server string) error {
	cfg := c.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["pier"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["pier"] = &clientcmdapi.Context{Cluster: "pier", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "pier"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Stop kills the API server and etcd and removes the directory. Nothing
// of a test cluster outlives it, so nothing waits for a graceful shutdown
// (the API server's takes about a second).
func (c *Cluster) Stop() {
	c.stop()
}

func (c *Cluster) stop() {
	c.stopOnce.Do(c.stopNow)
}

func (c *Cluster) stopNow() {
	for _, p := range append(c.controllers, c.apiserver, c.etcd) {
		if p != nil {
			p.kill()
		}
	}
	if c.unregister != nil {
		c.unregister()
	}
	os.RemoveAll(c.Dir)
}
