package kubelab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/lab"
)

// Where StartKubeProxy's kube-proxy serves inside its node (loopback of
// the node's namespace).
const (
	KubeProxyHealthzPort = 10256
	KubeProxyMetricsPort = 10249
)

// KubeProxyBinary is the kube-proxy hack/controlplane.sh builds beside
// kube-apiserver (in binDir, else cluster.DefaultBinDir()); the error wraps
// cluster.ErrBinariesMissing when it is not there.
func KubeProxyBinary(binDir string) (string, error) {
	if binDir == "" {
		binDir = cluster.DefaultBinDir()
	}
	p := filepath.Join(binDir, "kube-proxy")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: kube-proxy in %s (run hack/controlplane.sh)", cluster.ErrBinariesMissing, binDir)
	}
	return p, nil
}

// InstallKubeProxies runs kube-proxy on every node (Options.KubeProxy does
// it in Up; the pods lab calls it once its kubelets have registered).
func (e *Env) InstallKubeProxies(ctx context.Context, binDir string) error {
	bin, err := KubeProxyBinary(binDir)
	if err != nil {
		return err
	}
	e.kubeProxyBin = bin
	e.KubeProxies = make([]*lab.Process, len(e.Site.Nodes))
	for i := range e.Site.Nodes {
		if _, err := e.StartKubeProxy(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// kubeProxyArgs are node i's kube-proxy flags: nftables mode, the node's
// name and the nodes' kubeconfig; NodePorts only on the node's own
// segment addresses; no global sysctl touched (conntrack limits and
// timeouts left as they are) and no OOM score change; health and metrics
// on the node's loopback.
func (e *Env) kubeProxyArgs(i int) []string {
	v4, v6 := lab.NodeAddrs(i + 1)
	return []string{
		"--proxy-mode", "nftables",
		"--hostname-override", e.Site.Nodes[i].Name,
		"--kubeconfig", e.NodeKubeconfig,
		"--nodeport-addresses", fmt.Sprintf("%s/32,%s/128", v4.Addr(), v6.Addr()),
		"--conntrack-max-per-core", "0",
		"--conntrack-tcp-timeout-established", "0",
		"--conntrack-tcp-timeout-close-wait", "0",
		"--oom-score-adj", "0",
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", KubeProxyHealthzPort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", KubeProxyMetricsPort),
	}
}

// StartKubeProxy starts (or restarts) kube-proxy in node i (0-based) and
// returns once it has synced: its healthz answers 200 and its nftables
// tables are in the node. It needs Options.KubeProxy.
func (e *Env) StartKubeProxy(ctx context.Context, i int) (*lab.Process, error) {
	if e.kubeProxyBin == "" {
		return nil, fmt.Errorf("kube-proxy: the lab was made without Options.KubeProxy")
	}
	n := e.Site.Nodes[i]
	p, err := n.Start(e.kubeProxyBin, e.kubeProxyArgs(i)...)
	if err != nil {
		return nil, err
	}
	e.KubeProxies[i] = p
	if err := waitKubeProxy(ctx, n, p); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("kube-proxy on %s: %w\n%s", n.Name, err, p.OutputTail(30))
	}
	return p, nil
}

// waitKubeProxy polls until kube-proxy in n reports healthy and its tables
// "ip kube-proxy" and "ip6 kube-proxy" exist.
func waitKubeProxy(ctx context.Context, n *lab.Host, p *lab.Process) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: n.Dial}}
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.Done():
			return false, fmt.Errorf("exited")
		default:
		}
		if last = healthz(ctx, hc); last != nil {
			return false, nil
		}
		out, err := n.Run(ctx, "nft", "list", "tables")
		if err != nil {
			last = err
			return false, nil
		}
		for _, t := range []string{"table ip kube-proxy", "table ip6 kube-proxy"} {
			if !strings.Contains(out, t) {
				last = fmt.Errorf("no %q in nft list tables: %q", t, out)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("not synced: %w (last: %v)", err, last)
	}
	return nil
}

func healthz(ctx context.Context, hc *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", KubeProxyHealthzPort), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz %d: %s", resp.StatusCode, body)
	}
	return nil
}
