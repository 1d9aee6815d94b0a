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
// given, takes its listeners and backends from flags:
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
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/relay"
	"github.com/pier-lb/pier/relay/agent"
)

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	var listens, backends repeated
	var opts relay.Options
	flag.Var(&listens, "listen", "standalone listener name/PROTO/addr:port (repeat)")
	flag.Var(&backends, "backend", "standalone backend name=addr[:port] (repeat)")
	proxy := flag.Bool("proxy-protocol", false, "standalone: send PROXY protocol v2 to every backend")
	healthPort := flag.Uint("health-port", 0, "standalone: TCP port of the backends' active check (0: the first TCP listener's)")
	flag.BoolVar(&opts.KeyByAddressOnly, "key-by-address", false, "standalone: hash the client address only, not its port")
	flag.IntVar(&opts.MaxFlows, "max-flows", relay.DefaultMaxFlows, "standalone: UDP flows per listener")
	flag.IntVar(&opts.MaxTCPConns, "max-tcp-conns", relay.DefaultMaxTCPConns, "standalone: connections per TCP listener")
	flag.IntVar(&opts.MaxTCPConnsPerSource, "max-tcp-conns-per-source", relay.DefaultMaxTCPConnsPerSource, "standalone: connections per TCP listener from one client address (IPv6: one /64)")
	flag.DurationVar(&opts.UDPIdleTimeout, "udp-idle", relay.DefaultUDPIdleTimeout, "standalone: UDP flow idle timeout")
	flag.DurationVar(&opts.DrainTimeout, "drain", relay.DefaultDrainTimeout, "standalone: how long TCP flows may finish after SIGTERM")
	flag.BoolVar(&opts.Kernel.Enabled, "kernel", false, "standalone: UDP flows through the kernel data path (nftables DNAT; needs NET_ADMIN)")
	token := flag.String("token", "", "standalone: routing token offset:length, the bytes of a flow's first datagram or first TCP bytes naming its backend (off by default)")
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
	flag.Parse()

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
	if len(listens) == 0 && len(backends) == 0 {
		ao.Logger, ao.Registerer, ao.Health = log, reg, health
		runAgent(ctx, ao, *kubeconfig, log)
		return
	}
	opts.Logger, opts.Metrics = log, relay.NewMetrics(reg)
	opts.Kernel.Tables = relay.NewKernelTables() // this process's tables
	for _, s := range listens {
		l, err := relay.ParseListener(s)
		if err != nil {
			log.Error("bad --listen", "err", err)
			os.Exit(2)
		}
		opts.Listeners = append(opts.Listeners, l)
	}
	for _, s := range backends {
		b, err := relay.ParseBackend(s)
		if err != nil {
			log.Error("bad --backend", "err", err)
			os.Exit(2)
		}
		b.ProxyProtocol, b.HealthPort = *proxy, uint16(*healthPort)
		opts.Backends = append(opts.Backends, b)
	}
	if *token != "" {
		t, err := relay.ParseToken(*token)
		if err != nil {
			log.Error("bad --token", "err", err)
			os.Exit(2)
		}
		opts.Token = t
		if opts.Kernel.Enabled {
			log.Error("--token and --kernel do not go together: the kernel places a flow before the relay reads its payload")
			os.Exit(2)
		}
	}
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
