// Command pier-relay is Pier's L4 TCP/UDP relay: it takes each flow to the
// backend server that owns it, whichever node receives it.
//
// Kubernetes mode (the default, as a DaemonSet on the calling nodes) runs a
// relay for every Relay object that selects this node, with backends from
// the EndpointSlices of its backend Service:
//
//	pier-relay --node-name "$NODE_NAME" --namespace pier-system
//
// At start it removes the nftables tables of the kernel data path (Relay
// spec.dataPath Kernel) that an earlier pier-relay left; without NET_ADMIN
// that fails with a warning and Relays on the userspace path still work.
//
// Standalone mode (no Kubernetes), chosen when --listen or --backend is
// given, takes its listeners and backends from flags, checked with the
// rules of a Relay's spec (config.StandaloneRelay):
//
//	pier-relay --listen calls-udp/UDP/0.0.0.0:16384 --backend srv1=198.18.1.1 --backend srv2=198.18.1.2
package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only on --pprof-addr (DefaultServeMux)
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/relay"
	"github.com/pier-lb/pier/relay/agent"
)

func main() {
	var sf standaloneFlags
	sf.register(flag.CommandLine)
	var ao agent.Options
	kubeconfig := flag.String("kubeconfig", "", "Kubernetes mode: kubeconfig file (default: in-cluster)")
	flag.StringVar(&ao.NodeName, "node-name", os.Getenv("NODE_NAME"), "Kubernetes mode: this node's name")
	flag.StringVar(&ao.Namespace, "namespace", daemon.Env("POD_NAMESPACE", "pier-system"), "Kubernetes mode: Pier's namespace (relay Leases unless --lease-namespace)")
	leaseNS := flag.String("lease-namespace", "", "Kubernetes mode: namespace of the relay Leases, where the relay may write nothing else (default: --namespace)")
	flag.StringVar(&ao.StateDir, "state-dir", "/var/lib/pier-relay", `Kubernetes mode: where the relays served are saved, to serve them after a restart while the API server is unreachable ("": off)`)
	prepare := flag.String("prepare-state-dir", "", "uid:gid: create --state-dir owned by uid:gid, then exit (an init container run as root)")
	metricsAddr := flag.String("metrics-addr", daemon.ListenAddr("NODE_IP", 7474), `metrics and /healthz listen address ("0": off; default: NODE_IP, else loopback)`)
	level := flag.String("log-level", "info", "debug, info, warn or error")
	pprofAddr := flag.String("pprof-addr", "", "Go profiling (net/http/pprof) listen address (default off)")
	podName := flag.String("pod-name", os.Getenv("POD_NAME"), "Kubernetes mode: the relay's Pod, which owns the ConfigurationStatus it writes (with --pod-uid)")
	podUID := flag.String("pod-uid", os.Getenv("POD_UID"), "Kubernetes mode: the relay's Pod's UID")
	flag.Parse()
	if *podName != "" && *podUID != "" {
		ao.Owner = &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: *podName, UID: types.UID(*podUID)}
	}

	ao.StatusNamespace = ao.Namespace
	if *leaseNS != "" {
		ao.Namespace = *leaseNS
	}
	log := daemon.Logger(*level)
	if *prepare != "" {
		if err := agent.PrepareStateDir(ao.StateDir, *prepare); err != nil {
			log.Error("prepare state dir", "err", err)
			os.Exit(1)
		}
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	health := &daemon.Health{}
	go daemon.ServeMetrics(ctx, *metricsAddr, reg, health, log)
	if *pprofAddr != "" {
		go func() { log.Error("pprof server", "err", http.ListenAndServe(*pprofAddr, nil)) }()
	}
	if len(sf.listens) == 0 && len(sf.backends) == 0 {
		ao.Logger, ao.Registerer, ao.Health = log, reg, health
		runAgent(ctx, ao, *kubeconfig, log)
		return
	}
	opts, err := sf.options()
	if err != nil {
		log.Error("bad standalone flags", "err", err)
		os.Exit(2)
	}
	opts.Logger, opts.Metrics = log, relay.NewMetrics(reg)
	opts.Kernel.Tables = relay.NewKernelTables() // this process's tables
	r, err := relay.New(opts)
	if err != nil {
		log.Error("set up relay", "err", err)
		os.Exit(2)
	}
	if opts.Kernel.Enabled {
		// The tables an earlier pier-relay left, once this one's are
		// written (one pier-relay per network namespace).
		go func() {
			<-r.Ready()
			if err := opts.Kernel.Tables.RemoveStale(relay.DefaultKernelTablePrefix); err != nil {
				log.Warn("cannot remove kernel data path tables left by an earlier relay", "err", err)
			}
		}()
	}
	if err := r.Run(ctx); err != nil {
		log.Error("relay stopped", "err", err)
		os.Exit(1)
	}
}

// runAgent is Kubernetes mode: relays for the Relays that select this node.
func runAgent(ctx context.Context, o agent.Options, kubeconfig string, log *slog.Logger) {
	var err error
	if kubeconfig != "" {
		o.Config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		o.Config, err = rest.InClusterConfig()
	}
	if err != nil {
		log.Error("API server configuration", "err", err)
		os.Exit(2)
	}
	a, err := agent.New(o)
	if err != nil {
		log.Error("set up relay agent", "err", err)
		os.Exit(2)
	}
	if err := a.Run(ctx); err != nil {
		log.Error("relay agent stopped", "err", err)
		os.Exit(1)
	}
}
