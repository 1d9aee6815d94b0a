package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller/gatewayctl"
	"github.com/pier-lb/pier/controller/relayctl"
	"github.com/pier-lb/pier/controller/webhook"
	"github.com/pier-lb/pier/internal/apicache"
)

// ManagerOptions configures the process around the controller.
type ManagerOptions struct {
	Config    *rest.Config
	Namespace string // where Pier's configuration and its Lease live
	// RelayLeaseNamespace is where the relays renew their Leases; default
	// Namespace. A namespace of their own keeps the relays' write access
	// away from the leader Lease. Leases the relays renewed in Namespace
	// (relays not yet upgraded) are counted too.
	RelayLeaseNamespace string
	OnlyOwnClass        bool
	// GatewayAPI runs the Gateway API controller (gatewayctl): Gateways of
	// GatewayClasses with controllerName pier.dev/gateway-controller, with
	// their TCPRoutes and UDPRoutes. The API server must serve the Gateway
	// API CRDs (v1 GatewayClass, Gateway, TCPRoute, UDPRoute and
	// ReferenceGrant).
	GatewayAPI bool
	Workers    int // parallel reconciles of different Services; default 16
	// LeaderElection on a Lease named LeaderElectionID (default
	// "pier-controller"). The timings default to a 3 s lease retried every
	// 0.3 s (jittered up to 0.66 s), so a standby takes over within about 4 s of the
	// leader's death.
	LeaderElection   bool
	LeaderElectionID string
	LeaseDuration    time.Duration
	RenewDeadline    time.Duration
	RetryPeriod      time.Duration
	// MetricsAddr and HealthAddr are listen addresses; "0" turns one off.
	MetricsAddr, HealthAddr string
	// Registerer receives the controller's metrics; the manager's metrics
	// server serves whatever is registered with controller-runtime's registry.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Webhook, when set, runs the validating webhook on every replica
	// (leader or not). Kube, Objects, Namespace, Logger and Metrics are
	// filled in here.
	Webhook *webhook.Options
}

// NewManager builds a controller-runtime manager running the controller.
func NewManager(opts ManagerOptions) (manager.Manager, *Controller, error) {
	if opts.Config == nil || opts.Namespace == "" || opts.Registerer == nil {
		return nil, nil, errors.New("controller manager: config, namespace and registerer are required")
	}
	opts.defaults()
	if err := requireCRDs(opts); err != nil {
		return nil, nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	if err := gwv1.Install(scheme); err != nil {
		return nil, nil, err
	}
	mo := managerOptions(opts, scheme)
	fence, err := fenceLeaderLease(&mo, opts)
	if err != nil {
		return nil, nil, err
	}
	mgr, err := manager.New(opts.Config, mo)
	if err != nil {
		return nil, nil, err
	}
	c, err := New(Options{
		Client:       mgr.GetClient(),
		Reader:       mgr.GetAPIReader(),
		Fence:        fence,
		Namespace:    opts.Namespace,
		OnlyOwnClass: opts.OnlyOwnClass,
		Workers:      opts.Workers,
		Recorder:     mgr.GetEventRecorder("pier-controller"),
		Metrics:      NewMetrics(opts.Registerer),
		Logger:       opts.Logger,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := c.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if err := addRelayController(mgr, opts); err != nil {
		return nil, nil, err
	}
	if err := addGatewayController(mgr, opts); err != nil {
		return nil, nil, err
	}
	if err := addWebhook(mgr, opts); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	return mgr, c, nil
}

// requireCRDs refuses to start when the API server answers without
// Pier's CRDs: the controller would otherwise wait for informers that never
// sync and say nothing. An API server it cannot ask is left to the
// manager, which retries.
func requireCRDs(opts ManagerOptions) error {
	disc, err := discovery.NewDiscoveryClientForConfig(opts.Config)
	if err != nil {
		return err
	}
	err = apicache.RequireCRDs(disc, v1alpha1.GroupVersion, v1alpha1.Resources...)
	if err == nil && opts.GatewayAPI {
		err = apicache.RequireCRDs(disc, gwv1.SchemeGroupVersion, gatewayResources...)
		if errors.Is(err, apicache.ErrCRDsMissing) {
			err = fmt.Errorf("gateway API on, but the API server lacks its CRDs (install them, or turn it off): %w", err)
		}
	}
	if err != nil && !errors.Is(err, apicache.ErrCRDsMissing) {
		opts.Logger.Warn("cannot check the CRDs; starting anyway", "err", err)
		return nil
	}
	return err
}

// gatewayResources are the Gateway API resources the Gateway controller
// watches.
var gatewayResources = []string{"gatewayclasses", "gateways", "tcproutes", "udproutes", "referencegrants"}

// addGatewayController runs the Gateway API controller when asked, on the
// leader only.
func addGatewayController(mgr manager.Manager, opts ManagerOptions) error {
	if !opts.GatewayAPI {
		return nil
	}
	gc, err := gatewayctl.New(gatewayctl.Options{
		Client:    mgr.GetClient(),
		Namespace: opts.Namespace,
		Recorder:  mgr.GetEventRecorder("pier-controller"),
		Logger:    opts.Logger,
	})
	if err != nil {
		return err
	}
	return gc.SetupWithManager(mgr)
}

// fenceLeaderLease has the manager elect its leader on a LeaseFence and
// returns the fence's check (nil without leader election).
func fenceLeaderLease(mo *manager.Options, opts ManagerOptions) (func() error, error) {
	if !opts.LeaderElection {
		return nil, nil
	}
	lock, err := newLeaseLock(opts.Config, opts.Namespace, opts.LeaderElectionID, opts.RenewDeadline)
	if err != nil {
		return nil, err
	}
	f := NewLeaseFence(lock, opts.RenewDeadline, clock.RealClock{})
	mo.LeaderElectionResourceLockInterface = f
	return f.Check, nil
}

// addRelayController runs the Relay controller beside the Service
// controller, on the leader only.
func addRelayController(mgr manager.Manager, opts ManagerOptions) error {
	rc, err := relayctl.New(relayctl.Options{
		Client:            mgr.GetClient(),
		Namespace:         opts.RelayLeaseNamespace,
		OldLeaseNamespace: opts.Namespace,
		Recorder:          mgr.GetEventRecorder("pier-controller"),
		Metrics:           relayctl.NewMetrics(opts.Registerer),
		Logger:            opts.Logger,
	})
	if err != nil {
		return err
	}
	return rc.SetupWithManager(mgr)
}

// addWebhook runs the validating webhook in the manager. It reads Pier's
// objects straight from the API server, not from a cache that may lag
// behind an object applied a moment earlier.
func addWebhook(mgr manager.Manager, opts ManagerOptions) error {
	if opts.Webhook == nil {
		return nil
	}
	kube, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return err
	}
	wo := *opts.Webhook
	wo.Kube, wo.Namespace, wo.Logger = kube, opts.Namespace, opts.Logger
	wo.Objects = webhook.ClientReader{Reader: mgr.GetAPIReader()}
	wo.Cached = webhook.ClientReader{Reader: mgr.GetClient()}
	// The cache starts these informers with the manager, not on the first
	// request.
	for _, o := range []client.Object{&v1alpha1.IPAddressPool{}, &v1alpha1.L2Advertisement{},
		&v1alpha1.BGPPeer{}, &v1alpha1.BGPAdvertisement{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), o); err != nil {
			return fmt.Errorf("webhook cache: %w", err)
		}
	}
	wo.Metrics = webhook.NewMetrics(opts.Registerer)
	wh, err := webhook.New(wo)
	if err != nil {
		return err
	}
	if err := mgr.Add(wh); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("webhook", wh.ReadyCheck)
}

func (o *ManagerOptions) defaults() {
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = "pier-controller"
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 3 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 2 * time.Second
	}
	if o.RelayLeaseNamespace == "" {
		o.RelayLeaseNamespace = o.Namespace
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 300 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// relayLeases selects the Leases relays renew for the Relays they serve.
var relayLeases = func() labels.Selector {
	r, err := labels.NewRequirement(v1alpha1.LabelRelayName, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*r)
}()

func managerOptions(o ManagerOptions, scheme *runtime.Scheme) manager.Options {
	return manager.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(o.Logger.Handler()),
		Cache: cache.Options{DefaultTransform: trimCached, ByObject: map[client.Object]cache.ByObject{
			// Pier's configuration is read from its own namespace only.
			&v1alpha1.IPAddressPool{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			// The webhook validates against the other kinds too.
			&v1alpha1.L2Advertisement{}:  {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			&v1alpha1.BGPPeer{}:          {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			&v1alpha1.BGPAdvertisement{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			// Relays renew their Leases in Pier's namespace; only those are
			// cached (leader election reads its own Lease directly).
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.Namespace: {}, o.RelayLeaseNamespace: {}}, Label: relayLeases},
			// GatewayClass parameters are ConfigMaps in Pier's namespace.
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		}},
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &o.LeaseDuration,
		RenewDeadline:                 &o.RenewDeadline,
		RetryPeriod:                   &o.RetryPeriod,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		// Tests run several managers in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
}
