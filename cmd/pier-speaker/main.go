// Command pier-speaker runs on every node and announces the LoadBalancer
// addresses this node owns (ARP/NDP), following liveness among speakers,
// and the addresses of BGP pools to its BGP peers (embedded gobgp).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/speaker"
	"github.com/pier-lb/pier/speaker/members"
)

func main() {
	var o speaker.NodeOptions
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: in-cluster)")
	flag.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name")
	flag.StringVar(&o.Namespace, "namespace", daemon.Env("POD_NAMESPACE", "pier-system"), "namespace of Pier's configuration")
	flag.StringVar(&o.PasswordNamespace, "bgp-password-namespace", config.DefaultPasswordNamespace,
		"namespace of the BGP password Secrets (BGPPeer passwordSecret), the only Secrets the speaker reads")
	flag.BoolVar(&o.OnlyOwnClass, "only-own-class", false, "serve only Services with spec.loadBalancerClass pier.dev/lb")
	bind := flag.String("bind-addr", os.Getenv("NODE_IP"), "address the speakers gossip on (the node's IP)")
	routerID := flag.String("router-id", "", "BGP router ID, an IPv4 address (default: --bind-addr when it is IPv4; without one BGP is off)")
	flag.DurationVar(&o.BGPWarnAfter, "bgp-warn-after", 0, "how long a BGP session may stay down before the speaker warns (0: 30s)")
	flag.IntVar(&o.BindPort, "bind-port", 7946, "memberlist port (TCP and UDP)")
	keyFile := flag.String("memberlist-key-file", "/etc/pier/memberlist/key", "file holding the 16, 24 or 32 byte gossip key (a mounted Secret); FILE-next and FILE-previous, when present, are accepted too (key rotation)")
	profile := flag.String("memberlist-profile", "fast-lan", "failure detection timers: fast-lan (a dead node is noticed in 200-400 ms) or lan (seconds; for busy or lossy nodes)")
	flag.StringVar(&o.PodName, "pod-name", os.Getenv("POD_NAME"), "the speaker's Pod, which owns the ServiceL2Status objects it writes (with --pod-uid)")
	podUID := flag.String("pod-uid", os.Getenv("POD_UID"), "the speaker's Pod's UID")
	flag.BoolVar(&o.LocalVIP, "local-vip", false, "put owned addresses on lo so processes on this node accept their traffic")
	flag.StringVar(&o.StateDir, "state-dir", "/var/lib/pier", "where the speaker keeps what it announces across restarts")
	flag.DurationVar(&o.Periodic, "periodic-gratuitous", 0, "re-announce owned addresses this often (0: only on takeover)")
	metricsAddr := flag.String("metrics-addr", "", `metrics and /healthz listen addresses, comma-separated ("0": off; default: --bind-addr and loopback, port 7572)`)
	level := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()
	o.PodUID = types.UID(*podUID)

	log := daemon.Logger(*level)
	if err := setup(&o, *kubeconfig, *bind, *routerID, *keyFile, *profile); err != nil {
		log.Error("pier-speaker", "err", err)
		os.Exit(2)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.Registry, o.Logger, o.Health = reg, log, &daemon.Health{}
	if *metricsAddr == "" {
		*metricsAddr = net.JoinHostPort(o.BindAddr.String(), "7572") + ",127.0.0.1:7572"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go daemon.ServeMetrics(ctx, *metricsAddr, reg, o.Health, log)
	if err := speaker.RunNode(ctx, o); err != nil {
		log.Error("pier-speaker stopped", "err", err)
		os.Exit(1)
	}
}

func setup(o *speaker.NodeOptions, kubeconfig, bind, routerID, keyFile, profile string) error {
	var err error
	if o.MemberTimers, err = members.Profile(profile); err != nil {
		return fmt.Errorf("--memberlist-profile: %w", err)
	}
	if kubeconfig != "" {
		o.Config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		o.Config, err = rest.InClusterConfig()
	}
	if err != nil {
		return err
	}
	if o.NodeName == "" {
		return errors.New("--node-name (or NODE_NAME) is required")
	}
	if o.BindAddr, err = netip.ParseAddr(bind); err != nil {
		return errors.New("--bind-addr (or NODE_IP) must be this node's IP address")
	}
	if routerID != "" {
		if o.RouterID, err = netip.ParseAddr(routerID); err != nil || !o.RouterID.Is4() {
			return fmt.Errorf("--router-id %q: want an IPv4 address", routerID)
		}
	}
	o.SecretKey, o.SecondaryKeys, err = readKeys(keyFile)
	return err
}

// readKeys reads the gossip key and the keys accepted beside it while a
// key is rotated: FILE-next (step 1: every speaker learns the new key),
// FILE-previous (step 2: the new key encrypts, the old one is still
// understood). Missing ones are skipped.
func readKeys(keyFile string) ([]byte, [][]byte, error) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("memberlist key: %w", err)
	}
	var others [][]byte
	for _, suffix := range []string{"-next", "-previous"} {
		k, err := os.ReadFile(keyFile + suffix)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, nil, fmt.Errorf("memberlist key: %w", err)
		default:
			others = append(others, k)
		}
	}
	return key, others, nil
}
