package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
)

// RelayMetricsPort is where StartRelay's pier-relay serves /metrics and
// /healthz inside its node.
const RelayMetricsPort = 7474

// StartRelay starts pier-relay (relayBin) in Kubernetes mode on node i
// (0-based), reaching the API server over the management link, with extra
// flags. It returns once the relay has synced its view of the API.
func (e *Env) StartRelay(ctx context.Context, i int, relayBin string, extra ...string) (*lab.Process, error) {
	n := e.Site.Nodes[i]
	args := append([]string{
		"--kubeconfig", e.NodeKubeconfig, "--namespace", PierNamespace, "--node-name", n.Name,
		"--metrics-addr", fmt.Sprintf(":%d", RelayMetricsPort),
		"--state-dir", e.RelayStateDir(i),
	}, extra...)
	p, err := n.Start(relayBin, args...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput(ctx, "API view synced"); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("pier-relay on %s: %w", n.Name, err)
	}
	return p, nil
}

// RelayStateDir is the --state-dir StartRelay gives node i's pier-relay.
func (e *Env) RelayStateDir(i int) string {
	return filepath.Join(e.Cluster.Dir, "relay-"+e.Site.Nodes[i].Name)
}

// BackendAddr is the address of backend host i (1-based) on the L2 segment:
// 198.51.100.21 and up, beside the nodes.
func BackendAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)}), 24)
}

// AddBackendHost adds a host "srv<i>" (1-based) on the L2 segment at
// BackendAddr(i), routed to the client networks through the router, where
// calling-server stand-ins run (StartBackend).
func (e *Env) AddBackendHost(i int) (*lab.Host, error) {
	if i < 1 || i > 9 {
		return nil, fmt.Errorf("backend host %d: want 1 to 9", i)
	}
	h, err := e.Lab.AddHost(fmt.Sprintf("srv%d", i))
	if err != nil {
		return nil, err
	}
	if err := e.Site.Segment.Connect(h, "eth1", BackendAddr(i)); err != nil {
		return nil, err
	}
	router := netip.MustParseAddr("198.51.100.1")
	if err := h.AddRoute(lab.ClientNets, router); err != nil {
		return nil, err
	}
	return h, nil
}

// StartBackend runs a calling-server stand-in (`pier-lab echo -name`,
// echoBin) in h: it answers on tcpAddr and udpAddr with name and the client
// it sees, read from PROXY v2 headers when proxy is set.
func StartBackend(ctx context.Context, h *lab.Host, echoBin, name, tcpAddr, udpAddr string, proxy bool) (*lab.Process, error) {
	args := []string{"echo", "-name", name, "-tcp", tcpAddr, "-udp", udpAddr}
	if proxy {
		args = append(args, "-proxy")
	}
	p, err := h.Start(echoBin, args...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, echo.Ready); err != nil {
		return nil, err
	}
	return p, nil
}
