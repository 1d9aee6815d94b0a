package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/apicache"
	"github.com/pier-lb/pier/internal/configstatus"
	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/relay"
)

// Defaults for zero Options fields.
const (
	DefaultLeaseDuration = 30 * time.Second
	DefaultRenewInterval = 10 * time.Second
	DefaultResync        = time.Second
)

// Options configures an Agent.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// NodeName is this node's Node name.
	NodeName string
	// Namespace is Pier's namespace, where the relay Leases live.
	Namespace string
	// StatusNamespace is where the agent writes this node's
	// ConfigurationStatus (relay-<node>): Pier's namespace; "" writes
	// none.
	StatusNamespace string
	// Owner, when set, owns that ConfigurationStatus: the relay's Pod, so
	// that it goes with it (uninstall, a node drained).
	Owner *metav1.OwnerReference
	// Bind is the address every listener binds; default the IPv6 wildcard
	// (dual-stack), or the IPv4 one when the node has no IPv6.
	Bind netip.Addr
	// LeaseDuration and RenewInterval of the per-Relay Leases.
	LeaseDuration time.Duration
	RenewInterval time.Duration
	// Resync is how often the agent retries, without an event, the relays
	// whose ports were busy or that stopped; it reads the API view only
	// when an event changed it.
	Resync time.Duration
	// StateDir is where the agent saves the relays it runs, to serve them
	// after a restart while the API server is unreachable; "" saves
	// nothing.
	StateDir string
	// Health, when set, gets the agent's check for /healthz: failing while
	// the API cache has not synced although the API server answers (an API
	// outage is healthy: the relays are served from the saved state).
	Health     *daemon.Health
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: a private registry
	Clock      clock.WithTicker
}

// Agent runs the relays of the Relays that select this node.
type Agent struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	trigger chan struct{}
	synced  atomic.Bool
	passes  atomic.Int64 // passes of the loop, for tests
	// dirty: the API view changed since the loop last read it.
	dirty atomic.Bool
	// services are the backend Services of the Relays as last read: the
	// EndpointSlice events of other Services change nothing.
	services atomic.Pointer[map[Key]bool]
	kernel   relay.KernelTables // this process's kernel data path tables

	// Owned by the loop goroutine.
	staleRemoved bool // removeStaleTables ran
	running      map[Key]*instance
	relayMet     map[Key]relayMetrics
	lastErr      map[Key]string
	accepted     map[Key]*v1alpha1.Relay // the Relays as last accepted (Desired)
	want         map[Key]Want            // Desired as last read; nil before the first read
	refused      map[Key]string          // the errors last logged of the Relays refused
	leases       *leases
	cfgStatus    *configstatus.Writer // nil: none written
	draining     sync.WaitGroup
	stateFile    stateFile // StateFile
	acceptedFile stateFile // AcceptedFile
}

// New validates opts; it starts nothing.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil {
		return nil, errors.New("relay agent: no API server configuration")
	}
	if opts.NodeName == "" || opts.Namespace == "" {
		return nil, errors.New("relay agent: node name and namespace are required")
	}
	if opts.Bind.IsValid() && !opts.Bind.IsUnspecified() && !opts.Bind.IsLoopback() {
		return nil, fmt.Errorf("relay agent: bind %s: want a wildcard (or loopback for tests)", opts.Bind)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.LeaseDuration, DefaultLeaseDuration)
	def(&opts.RenewInterval, DefaultRenewInterval)
	def(&opts.Resync, DefaultResync)
	if opts.RenewInterval >= opts.LeaseDuration {
		return nil, fmt.Errorf("relay agent: renew interval %s must be shorter than the lease duration %s", opts.RenewInterval, opts.LeaseDuration)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	a := &Agent{
		opts:     opts,
		log:      opts.Logger.With("component", "relay-agent", "node", opts.NodeName),
		metrics:  newMetrics(opts.Registerer),
		trigger:  make(chan struct{}, 1),
		kernel:   relay.NewKernelTables(),
		running:  map[Key]*instance{},
		relayMet: map[Key]relayMetrics{},
		lastErr:  map[Key]string{},
		refused:  map[Key]string{},
	}
	if opts.StateDir != "" {
		a.stateFile.path = filepath.Join(opts.StateDir, StateFile)
		a.acceptedFile.path = filepath.Join(opts.StateDir, AcceptedFile)
	}
	a.dirty.Store(true)
	if opts.Health != nil {
		ping, err := daemon.APIPing(opts.Config)
		if err != nil {
			return nil, err
		}
		opts.Health.Add("api", daemon.APICheck(a.synced.Load, ping))
	}
	return a, nil
}

// Run serves until ctx ends, then stops taking new flows, drains every relay
// and deletes its Leases. It does not need the API server to start.
func (a *Agent) Run(ctx context.Context) error {
	c, err := newCache(a.opts.Config, a.opts.NodeName)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(a.opts.Config)
	if err != nil {
		return fmt.Errorf("relay agent: %w", err)
	}
	crds := func() error {
		return apicache.RequireCRDs(cs.Discovery(), v1alpha1.GroupVersion, v1alpha1.Resources...)
	}
	a.leases = newLeases(cs.CoordinationV1().Leases(a.opts.Namespace), a.opts.NodeName,
		a.opts.LeaseDuration, a.opts.RenewInterval, a.opts.Clock, a.log, a.metrics)
	bind := a.opts.Bind
	if !bind.IsValid() {
		bind = wildcard()
	}
	if a.cfgStatus, err = a.newConfigStatus(); err != nil {
		return fmt.Errorf("relay agent: %w", err)
	}
	a.log.Info("relay agent starting", "bind", bind)
	return daemon.RunAll(ctx, a.log,
		c.Start,
		func(ctx context.Context) error {
			if a.cfgStatus == nil {
				return nil
			}
			return a.cfgStatus.Run(ctx)
		},
		func(ctx context.Context) error {
			return watch(ctx, c, crds, a.changed, a.backendSlice, &a.synced, a.metrics, a.log)
		},
		func(ctx context.Context) error { return a.loop(ctx, c, bind) },
		a.leases.Run,
	)
}

// wildcard is the IPv6 wildcard when this node can open IPv6 sockets (they
// take IPv4 too), else the IPv4 one.
func wildcard() netip.Addr {
	c, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		return netip.IPv4Unspecified()
	}
	_ = c.Close()
	return netip.IPv6Unspecified()
}

// Trigger asks for a pass over the API view; calls coalesce.
func (a *Agent) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// changed says the API view changed: the next pass reads it.
func (a *Agent) changed() {
	a.dirty.Store(true)
	a.Trigger()
}

// backendSlice reports whether es belongs to a Relay's backend Service
// (as of the last read of the Relays).
func (a *Agent) backendSlice(es *discoveryv1.EndpointSlice) bool {
	svcs := a.services.Load()
	if svcs == nil {
		return true
	}
	svc, ok := es.Labels[discoveryv1.LabelServiceName]
	return ok && (*svcs)[Key{Namespace: es.Namespace, Name: svc}]
}

// loop makes a pass on every trigger and resync tick: it reads the API
// view only when it changed (changed), otherwise it applies the relays
// last read again (retrying those that could not start or stopped), so
// that an idle agent does no work that grows with the cluster.
func (a *Agent) loop(ctx context.Context, r client.Reader, bind netip.Addr) error {
	tick := a.opts.Clock.NewTicker(a.opts.Resync)
	defer tick.Stop()
	saved := a.loadSaved()
	a.restoreAccepted()
	for {
		switch {
		case a.synced.Load():
			saved = nil
			if a.dirty.Swap(false) {
				a.reconcile(ctx, r, bind)
			} else {
				a.refresh(ctx)
			}
			a.removeStaleTables()
		case saved != nil:
			a.apply(ctx, saved) // until the API view replaces it
			a.metrics.served.Set(float64(len(a.running)))
			a.removeStaleTables()
		}
		a.passes.Add(1)
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-a.trigger:
		case <-tick.C():
		}
	}
}

// removeStaleTables deletes, once, the kernel data path tables an earlier
// pier-relay left, after this one's relays have written theirs (so that
// NAT stays hooked in the node's network namespace and the kernel's flows
// go on).
func (a *Agent) removeStaleTables() {
	if a.staleRemoved {
		return
	}
	a.staleRemoved = true
	if err := a.kernel.RemoveStale(relay.DefaultKernelTablePrefix); err != nil {
		a.log.Info("cannot remove kernel data path tables left by an earlier relay (the kernel data path needs NET_ADMIN; the userspace path works without it)", "err", err)
	}
}

// shutdown waits for every relay to drain (their contexts ended with ctx).
func (a *Agent) shutdown() {
	a.log.Info("draining relays", "relays", len(a.running))
	for k, i := range a.running {
		a.drain(k, i)
	}
	a.running = map[Key]*instance{}
	a.draining.Wait()
	a.log.Info("relays drained")
}

// reconcile reads the API view and runs what it asks for.
func (a *Agent) reconcile(ctx context.Context, r client.Reader, bind netip.Addr) {
	a.metrics.apiReads.Inc()
	in, err := a.read(ctx, r)
	if err != nil {
		a.dirty.Store(true) // read again on the next pass
		a.log.Warn("reading the API cache failed, keeping the relays as they are", "err", err)
		return
	}
	in.Bind = bind
	want, accepted, refused := Desired(in)
	a.accepted, a.want = accepted, want
	a.logRefused(refused, want)
	a.save(want)
	a.saveAccepted(accepted)
	a.refresh(ctx)
}

// refresh applies the relays last read (none before the first read).
func (a *Agent) refresh(ctx context.Context) {
	if a.want == nil {
		return
	}
	a.apply(ctx, a.want)
	a.leases.Set(slices.Collect(maps.Keys(a.running)))
	a.metrics.served.Set(float64(len(a.running)))
}

// logRefused logs each Relay config refuses, once per distinct problem,
// counts them, and hands them to the ConfigurationStatus writer.
func (a *Agent) logRefused(refused map[Key]error, want map[Key]Want) {
	for k, err := range refused {
		if msg := err.Error(); a.refused[k] != msg {
			a.refused[k] = msg
			_, kept := want[k]
			a.log.Warn("Relay is invalid, refused (a relay serving it keeps its last valid configuration)",
				"relay", k.String(), "serving", kept, "err", err)
		}
	}
	for k := range a.refused {
		if _, ok := refused[k]; !ok {
			delete(a.refused, k)
		}
	}
	a.metrics.invalid.Set(float64(len(refused)))
	if a.cfgStatus != nil {
		a.cfgStatus.Set(refusedErr(refused)) // written on change only
	}
}

// read lists the Relays, then the EndpointSlices of their backend
// Services (those of the Relays as accepted before too: a refused Relay is
// served as it was), and gets this node's Node. The Services are published
// for the event handlers before the slices are listed, so that no change
// of a slice falls between the two.
func (a *Agent) read(ctx context.Context, r client.Reader) (Inputs, error) {
	in := Inputs{Accepted: a.accepted}
	var relays v1alpha1.RelayList
	if err := r.List(ctx, &relays); err != nil {
		return in, fmt.Errorf("list relays: %w", err)
	}
	svcs := backendServices(relays.Items, a.accepted)
	a.services.Store(&svcs)
	for svc := range svcs {
		var eps discoveryv1.EndpointSliceList
		// Not copied: Desired only reads them.
		if err := r.List(ctx, &eps, client.InNamespace(svc.Namespace),
			client.MatchingFields{serviceIndex: svc.Name}, client.UnsafeDisableDeepCopy); err != nil {
			return in, fmt.Errorf("list endpoint slices of %s: %w", svc, err)
		}
		in.EndpointSlices = append(in.EndpointSlices, eps.Items...)
	}
	var n corev1.Node
	switch err := r.Get(ctx, client.ObjectKey{Name: a.opts.NodeName}, &n); {
	case err == nil:
		in.Node = &n
	case !apierrors.IsNotFound(err):
		return in, fmt.Errorf("get node %s: %w", a.opts.NodeName, err)
	}
	in.Relays = relays.Items
	return in, nil
}

// backendServices are the backend Services of relays and of accepted.
func backendServices(relays []v1alpha1.Relay, accepted map[Key]*v1alpha1.Relay) map[Key]bool {
	out := map[Key]bool{}
	for i := range relays {
		out[Key{Namespace: relays[i].Namespace, Name: relays[i].Spec.Backend.ServiceName}] = true
	}
	for _, r := range accepted {
		out[Key{Namespace: r.Namespace, Name: r.Spec.Backend.ServiceName}] = true
	}
	return out
}

// apply makes the running relays match want.
func (a *Agent) apply(ctx context.Context, want map[Key]Want) {
	replaced := map[Key]bool{}
	for k, i := range a.running {
		w, ok := want[k]
		switch {
		case !ok:
			a.log.Info("relay no longer served here, draining", "relay", k.String())
			a.stop(k, i)
		case i.exited():
			a.log.Warn("relay stopped", "relay", k.String(), "err", i.err)
			delete(a.running, k)
		case !i.cfg.Equal(w.Config):
			a.log.Info("relay changed, replacing it (the old one drains)", "relay", k.String())
			a.stop(k, i)
			replaced[k] = true
		default:
			changed, err := i.setBackends(w.Backends)
			switch {
			case err != nil:
				a.log.Warn("set backends", "relay", k.String(), "err", err)
			case changed:
				a.log.Info("backends changed", "relay", k.String(), "backends", backendNames(w.Backends))
			}
			if err := i.r.SetVIPs(w.VIPs); err != nil {
				a.log.Warn("set addresses", "relay", k.String(), "err", err)
			}
		}
	}
	for k, m := range a.relayMet {
		if _, ok := want[k]; !ok {
			m.unregister()
			delete(a.relayMet, k)
			delete(a.lastErr, k)
		}
	}
	for k, w := range want {
		if _, ok := a.running[k]; !ok {
			a.start(ctx, k, w, replaced[k])
		}
	}
}

func backendNames(bs []relay.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func (a *Agent) stop(k Key, i *instance) {
	i.stop()
	a.drain(k, i)
	delete(a.running, k)
}

// drain waits in the background for a stopped relay to finish its flows.
func (a *Agent) drain(k Key, i *instance) {
	a.draining.Go(func() {
		<-i.done
		a.log.Debug("relay drained", "relay", k.String())
	})
}

func (a *Agent) start(ctx context.Context, k Key, w Want, replacing bool) {
	m, ok := a.relayMet[k]
	if !ok {
		m = newRelayMetrics(a.opts.Registerer, k)
		a.relayMet[k] = m
	}
	retries := 1
	if replacing {
		retries = bindRetries
	}
	log := a.opts.Logger.With("relay", k.String())
	i, err := start(ctx, w, m.m, a.kernel, log, a.opts.Clock, retries)
	if err != nil {
		a.metrics.startFailures.Inc()
		if msg := err.Error(); a.lastErr[k] != msg {
			a.lastErr[k] = msg
			a.log.Warn("cannot serve relay, trying again", "relay", k.String(), "err", err)
		}
		return
	}
	delete(a.lastErr, k)
	a.running[k] = i
	a.log.Info("serving relay", "relay", k.String(), "listeners", len(w.Config.Listeners), "backends", backendNames(w.Backends))
}

// loadSaved is the desired set saved by a previous run, or nil when there
// is none to serve (no state dir, or a file that cannot be read).
func (a *Agent) loadSaved() map[Key]Want {
	path := a.stateFile.path
	if path == "" {
		return nil
	}
	want, err := loadState(path)
	if err != nil {
		a.log.Warn("ignoring saved state", "err", err)
		return nil
	}
	if a.synced.Load() {
		return nil
	}
	a.log.Info(fmt.Sprintf("API unreachable, serving %d relays from saved state", len(want)), "relays", len(want), "file", path)
	return want
}

// save writes want to the state file when it changed.
func (a *Agent) save(want map[Key]Want) {
	data, err := encodeState(want)
	if err != nil {
		a.log.Warn("encode state", "err", err)
		return
	}
	wrote, err := a.stateFile.write(data)
	if err != nil {
		a.metrics.stateWriteFailures.Inc()
		a.log.Warn("cannot save the relays to serve after a restart", "err", err)
		return
	}
	if wrote {
		a.log.Debug("state saved", "relays", len(want), "file", a.stateFile.path)
	}
}
