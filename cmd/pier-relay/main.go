// Command pier-relay is Pier's L4 TCP/UDP relay: it takes each flow to the
// backend server that owns it, whichever node receives it.
//
// Standalone mode (no Kubernetes) takes its listeners and backends from
// flags:
//
//	pier-relay --listen calls-udp/UDP/0.0.0.0:16384 --backend srv1=198.18.1.1 --backend srv2=198.18.1.2
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/relay"
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
	flag.BoolVar(&opts.KeyByAddressOnly, "key-by-address", false, "hash the client address only, not its port")
	flag.IntVar(&opts.MaxFlows, "max-flows", relay.DefaultMaxFlows, "UDP flows per listener")
	flag.DurationVar(&opts.UDPIdleTimeout, "udp-idle", relay.DefaultUDPIdleTimeout, "UDP flow idle timeout")
	flag.DurationVar(&opts.DrainTimeout, "drain", relay.DefaultDrainTimeout, "how long TCP flows may finish after SIGTERM")
	metricsAddr := flag.String("metrics-addr", ":7474", `metrics listen address ("0": off)`)
	level := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	log := daemon.Logger(*level)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	opts.Logger, opts.Metrics = log, relay.NewMetrics(reg)
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
	r, err := relay.New(opts)
	if err != nil {
		log.Error("set up relay", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *metricsAddr != "0" {
		go serveMetrics(*metricsAddr, reg, log)
	}
	if err := r.Run(ctx); err != nil {
		log.Error("relay stopped", "err", err)
		os.Exit(1)
	}
}

func serveMetrics(addr string, reg *prometheus.Registry, log interface{ Error(string, ...any) }) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err := http.ListenAndServe(addr, mux); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server", "err", err)
	}
}
