// Command pier-controller assigns LoadBalancer addresses to Services from
// Pier's IPAddressPools. Run two replicas: one leads, the other stands by.
package main

import (
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/controller"
	"github.com/pier-lb/pier/controller/gossipkey"
	"github.com/pier-lb/pier/controller/webhook"
	"github.com/pier-lb/pier/internal/daemon"
)

func main() {
	var opts controller.ManagerOptions
	flag.StringVar(&opts.Namespace, "namespace", daemon.Env("POD_NAMESPACE", "pier-system"), "namespace of Pier's configuration and Lease")
	flag.StringVar(&opts.RelayLeaseNamespace, "relay-lease-namespace", "", "namespace where the relays renew their Leases (default: --namespace)")
	flag.BoolVar(&opts.OnlyOwnClass, "only-own-class", false, "serve only Services with spec.loadBalancerClass pier.dev/lb")
	flag.BoolVar(&opts.GatewayAPI, "gateway-api", false, "serve Gateway API Gateways of GatewayClasses with controllerName pier.dev/gateway-controller (needs the Gateway API CRDs)")
	flag.IntVar(&opts.Workers, "workers", 16, "Services reconciled in parallel (never the same one twice at once)")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect one active replica on a Lease")
	flag.DurationVar(&opts.LeaseDuration, "lease-duration", 3*time.Second, "leader lease duration")
	flag.DurationVar(&opts.RenewDeadline, "renew-deadline", 2*time.Second, "leader renew deadline")
	flag.DurationVar(&opts.RetryPeriod, "retry-period", 300*time.Millisecond, "leader election retry period")
	flag.StringVar(&opts.MetricsAddr, "metrics-addr", daemon.ListenAddr("POD_IP", 7472), `metrics listen address ("0": off; default: POD_IP, else loopback)`)
	flag.StringVar(&opts.HealthAddr, "health-addr", daemon.ListenAddr("POD_IP", 7473), `/healthz and /readyz listen address ("0": off; default: POD_IP, else loopback)`)
	wh := webhook.Options{}
	webhookOn := flag.Bool("webhook", true, "serve the validating webhook for Pier's resources (on every replica)")
	flag.StringVar(&wh.ServiceName, "webhook-service", "pier-webhook", "Service through which the API server reaches the webhook")
	flag.StringVar(&wh.URL, "webhook-url", "", "base https URL for the API server instead of a Service (API servers outside the cluster)")
	flag.StringVar(&wh.ListenAddress, "webhook-addr", ":9443", "webhook listen address")
	flag.StringVar(&wh.SecretNamespace, "webhook-secret-namespace", "", "namespace of the webhook's certificate Secret (default: --namespace)")
	flag.StringVar(&wh.PasswordNamespace, "bgp-password-namespace", config.DefaultPasswordNamespace,
		"namespace of the BGP password Secrets: the webhook refuses a BGPPeer naming another (as pier-speaker --bgp-password-namespace)")
	gossipSecret := flag.String("memberlist-secret", "pier-memberlist", `Secret with the speakers' memberlist key, created with a random key when absent ("": the site provides it)`)
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
	if err := addGossipKey(mgr, cfg, opts.Namespace, *gossipSecret, log); err != nil {
		log.Error("set up memberlist key", "err", err)
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error("controller stopped", "err", err)
		os.Exit(1)
	}
}

// addGossipKey makes the manager create the speakers' memberlist key
// Secret when it is absent (secret "": off).
func addGossipKey(mgr manager.Manager, cfg *rest.Config, namespace, secret string, log *slog.Logger) error {
	if secret == "" {
		return nil
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c, err := gossipkey.New(gossipkey.Options{Kube: kube, Namespace: namespace, Name: secret, Logger: log})
	if err != nil {
		return err
	}
	return mgr.Add(c)
}
