// Command pier-controller assigns LoadBalancer addresses to Services from
// Pier's IPAddressPools. Run two replicas: one leads, the other stands by.
package main

import (
	"flag"
	"os"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pier-lb/pier/controller"
	"github.com/pier-lb/pier/controller/webhook"
	"github.com/pier-lb/pier/internal/daemon"
)

func main() {
	var opts controller.ManagerOptions
	flag.StringVar(&opts.Namespace, "namespace", daemon.Env("POD_NAMESPACE", "pier-system"), "namespace of Pier's configuration and Lease")
	flag.BoolVar(&opts.OnlyOwnClass, "only-own-class", false, "serve only Services with spec.loadBalancerClass pier.dev/lb")
	flag.IntVar(&opts.Workers, "workers", 16, "Services reconciled in parallel (never the same one twice at once)")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect one active replica on a Lease")
	flag.DurationVar(&opts.LeaseDuration, "lease-duration", 3*time.Second, "leader lease duration")
	flag.DurationVar(&opts.RenewDeadline, "renew-deadline", 2*time.Second, "leader renew deadline")
	flag.DurationVar(&opts.RetryPeriod, "retry-period", 300*time.Millisecond, "leader election retry period")
	flag.StringVar(&opts.MetricsAddr, "metrics-addr", ":7472", `metrics listen address ("0": off)`)
	flag.StringVar(&opts.HealthAddr, "health-addr", ":7473", `/healthz and /readyz listen address ("0": off)`)
	wh := webhook.Options{}
	webhookOn := flag.Bool("webhook", true, "serve the validating webhook for Pier's resources (on every replica)")
	flag.StringVar(&wh.ServiceName, "webhook-service", "pier-webhook", "Service through which the API server reaches the webhook")
	flag.StringVar(&wh.URL, "webhook-url", "", "base https URL for the API server instead of a Service (API servers outside the cluster)")
	flag.StringVar(&wh.ListenAddress, "webhook-addr", ":9443", "webhook listen address")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()

	log := daemon.Logger(*level)
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	// --kubeconfig is registered by controller-runtime; without it, KUBECONFIG
	// or the in-cluster configuration is used.
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error("kubeconfig", "err", err)
		os.Exit(1)
	}
	opts.Config, opts.Logger, opts.Registerer = cfg, log, ctrlmetrics.Registry
	if *webhookOn {
		if wh.URL != "" {
			wh.ServiceName = ""
		}
		opts.Webhook = &wh
	}
	mgr, _, err := controller.NewManager(opts)
	if err != nil {
		log.Error("set up controller", "err", err)
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error("controller stopped", "err", err)
		os.Exit(1)
	}
}
