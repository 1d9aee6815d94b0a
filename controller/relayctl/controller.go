package relayctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// EventRecorder records events about objects (client-go's events API).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Options configures the Relay controller.
type Options struct {
	// Client reads from the informer caches and writes to the API server.
	Client client.Client
	// Namespace is where the relays renew their Leases.
	Namespace string
	// OldLeaseNamespace, when set, is where relays of an earlier version
	// renew theirs (Pier's namespace): counted too, so an upgrade that
	// moves the Leases loses no relay while the relays roll.
	OldLeaseNamespace string
	Recorder          EventRecorder
	Metrics           *Metrics
	Logger            *slog.Logger
	Clock             clock.PassiveClock
}

// Controller keeps, for every Relay, the Service Pier owns for it
// (exposure LoadBalancer or NodePort) and its status: addresses, ready
// backends, ready relays and conditions. It runs on the leader only.
//
// The owned Service is named config.RelayServiceName (the Relay's name +
// "-relay"), in the Relay's namespace, with a controller reference to the
// Relay. A LoadBalancer always gets spec.loadBalancerClass pier.dev/lb, so
// Pier serves it with or without --only-own-class and no other load
// balancer implementation takes it. It has no selector; the controller
// writes its EndpointSlices (endpoints.go). Edits to the fields
// Pier manages are undone; the Service and its slices are deleted
// explicitly when the exposure becomes HostNetwork or the Relay goes (no
// garbage collector is assumed, and no finalizer holds the Relay back: an
// owned Service found without its Relay, at start for example, is
// deleted). An invalid Relay (the webhook may have been down) keeps its
// Service as it was and reports Ready False, reason InvalidSpec.
//
// status.addresses are the Service's ingress IPs for LoadBalancer, and the
// InternalIPs of the nodes whose relays hold a live Lease for NodePort and
// HostNetwork. readyRelays counts those Leases; the Relay is looked at
// again when the first of them expires.
type Controller struct {
	opts   Options
	log    *slog.Logger
	leases *leaseWatch

	mu     sync.Mutex
	states map[types.NamespacedName]string // relay -> metrics state
}

// New validates opts; it starts nothing (SetupWithManager).
func New(opts Options) (*Controller, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("relay controller: a client is required")
	case opts.Namespace == "":
		return nil, errors.New("relay controller: Pier's namespace is required")
	case opts.Recorder == nil:
		return nil, errors.New("relay controller: an event recorder is required")
	case opts.Metrics == nil:
		return nil, errors.New("relay controller: metrics are required (NewMetrics)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Controller{
		opts:   opts,
		log:    opts.Logger.With("component", "relay-controller"),
		leases: newLeaseWatch(opts.Clock),
		states: map[types.NamespacedName]string{},
	}, nil
}

// Reconcile brings one Relay's owned Service and status in line with its
// spec and with the EndpointSlices and Leases it depends on.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var relay v1alpha1.Relay
	if err := c.opts.Client.Get(ctx, req.NamespacedName, &relay); err != nil {
		if apierrors.IsNotFound(err) {
			c.setState(req.NamespacedName, "")
			c.leases.forget(req.NamespacedName)
			return reconcile.Result{}, c.deleteService(ctx, req.Namespace, req.Name, nil)
		}
		return reconcile.Result{}, err
	}
	obs := &observation{exposure: config.RelayExposure(&relay.Spec)}
	var result reconcile.Result
	if _, problems := config.ParseRelay(&relay); len(problems) > 0 {
		obs.invalid = joinProblems(problems)
		// The Service is left as it is; read it for the status only.
		obs.svc, obs.exposed = c.currentService(ctx, &relay)
	} else if err := c.expose(ctx, &relay, obs); err != nil {
		return reconcile.Result{}, err
	}
	if obs.retry {
		result.RequeueAfter = serviceRetry
	}
	if err := c.observe(ctx, &relay, obs); err != nil {
		return reconcile.Result{}, err
	}
	if obs.svc != nil && obs.invalid == "" {
		if err := c.syncSlices(ctx, &relay, obs.svc, obs.nodes); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := c.writeStatus(ctx, &relay, obs); err != nil {
		return reconcile.Result{}, err
	}
	if obs.nextExpiry > 0 && (result.RequeueAfter == 0 || obs.nextExpiry < result.RequeueAfter) {
		result.RequeueAfter = obs.nextExpiry
	}
	return result, nil
}

// serviceRetry is when a Service the API server refused is tried again
// (the Relay's or the Service's next change retries at once).
const serviceRetry = 30 * time.Second

// expose creates, updates or deletes the owned Service as the exposure
// requires and records what it found in obs.
func (c *Controller) expose(ctx context.Context, relay *v1alpha1.Relay, obs *observation) error {
	if !config.NeedsService(obs.exposure) {
		obs.exposed = exposedCond{ok: true, reason: "HostNetwork", msg: "relays listen on the nodes' own addresses"}
		return c.deleteService(ctx, relay.Namespace, relay.Name, relay)
	}
	svc, err := c.ensureService(ctx, relay)
	var refused *serviceRefused
	switch {
	case errors.As(err, &refused):
		obs.exposed = exposedCond{reason: refused.reason, msg: refused.Error()}
		obs.retry = refused.retry
		return nil
	case err != nil:
		return err
	}
	obs.svc = svc
	obs.exposed = exposedFor(obs.exposure, svc)
	return nil
}

// setState records relay's state for the pier_controller_relays gauge; ""
// forgets it.
func (c *Controller) setState(key types.NamespacedName, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state == "" {
		delete(c.states, key)
	} else {
		c.states[key] = state
	}
	counts := map[string]int{relayReady: 0, relayNotReady: 0, relayInvalid: 0}
	for _, s := range c.states {
		counts[s]++
	}
	for s, n := range counts {
		c.opts.Metrics.relays.WithLabelValues(s).Set(float64(n))
	}
}

// writeStatus patches the Relay's status when it changed, with an event
// when the Ready condition changes.
func (c *Controller) writeStatus(ctx context.Context, relay *v1alpha1.Relay, obs *observation) error {
	now := c.opts.Clock.Now()
	want := statusFor(relay, obs, now)
	c.setState(client.ObjectKeyFromObject(relay), stateOf(obs, &want))
	if equality.Semantic.DeepEqual(relay.Status, want) {
		return nil
	}
	before := readyOf(&relay.Status)
	patch := client.MergeFrom(relay.DeepCopy())
	relay.Status = want
	if err := c.opts.Client.Status().Patch(ctx, relay, patch); err != nil {
		return fmt.Errorf("write status of Relay %s/%s: %w", relay.Namespace, relay.Name, err)
	}
	after := readyOf(&relay.Status)
	if after != nil && (before == nil || before.Reason != after.Reason || before.Message != after.Message) {
		c.readyEvent(relay, after.Reason, after.Message)
	}
	return nil
}

// readyEvent reports a new Ready condition: a warning for an invalid spec
// (the webhook may have been down), normal otherwise.
func (c *Controller) readyEvent(relay *v1alpha1.Relay, reason, msg string) {
	typ := corev1.EventTypeNormal
	if reason == reasonInvalidSpec {
		typ = corev1.EventTypeWarning
		c.log.Warn("invalid Relay", "relay", relay.Namespace+"/"+relay.Name, "err", msg)
	}
	c.opts.Recorder.Eventf(relay, nil, typ, reason, "Reconcile", "%s", msg)
}

func joinProblems(problems []*config.Error) string {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Field + ": " + p.Message
	}
	return strings.Join(msgs, "; ")
}

// States of a Relay in pier_controller_relays.
const (
	relayReady    = "ready"
	relayNotReady = "not_ready"
	relayInvalid  = "invalid"
)

// Metrics are the Relay controller's metrics.
type Metrics struct {
	relays *prometheus.GaugeVec
	errors *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		relays: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_controller_relays",
			Help: "Relays by state: ready, not_ready (not exposed, or no ready backend or relay), invalid.",
		}, []string{"state"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_controller_relay_service_errors_total",
			Help: "Owned Service writes the API server refused, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.relays, m.errors)
	return m
}
