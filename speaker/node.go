package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
	"github.com/pier-lb/pier/speaker/vip"
)

// NodeOptions configure a whole speaker process.
type NodeOptions struct {
	Config       *rest.Config
	NodeName     string
	Namespace    string
	OnlyOwnClass bool
	// BindAddr is where memberlist gossips (the node's address on the
	// network the speakers share); BindPort defaults to 7946.
	BindAddr  netip.Addr
	BindPort  int
	SecretKey []byte
	// RouterID is the BGP identifier (an IPv4 address); default BindAddr
	// when that is IPv4. Without either, BGP is off on this node.
	RouterID netip.Addr
	// BGPWarnAfter is how long a BGP session may stay down before the
	// speaker says so (log and BGPSessionStatus); default 30s.
	BGPWarnAfter time.Duration
	// LocalVIP puts owned addresses on lo (see package vip).
	LocalVIP bool
	StateDir string
	Periodic time.Duration // periodic gratuitous re-announcement; 0: off
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// RunNode runs a speaker with its API cache, membership and announcers
// until ctx ends. It does not need the API server to start: until the
// caches sync it announces from the saved state.
func RunNode(ctx context.Context, o NodeOptions) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	mapper := restMapper()
	c, err := cache.New(o.Config, cache.Options{Scheme: scheme, Mapper: mapper, ByObject: map[client.Object]cache.ByObject{
		&v1alpha1.IPAddressPool{}:    {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		&v1alpha1.L2Advertisement{}:  {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		&v1alpha1.ServiceL2Status{}:  {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		&v1alpha1.BGPPeer{}:          {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		&v1alpha1.BGPAdvertisement{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		&corev1.Secret{}:             {Namespaces: map[string]cache.Config{o.Namespace: {}}},
	}})
	if err != nil {
		return fmt.Errorf("speaker cache: %w", err)
	}
	writer, err := client.New(o.Config, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		return err
	}
	mem, err := members.New(members.Options{
		Name: o.NodeName, BindAddr: o.BindAddr, BindPort: o.BindPort, SecretKey: o.SecretKey,
		Logger: o.Logger, Metrics: members.NewMetrics(o.Registry),
	})
	if err != nil {
		return err
	}
	ann, err := l2.New(l2.Options{Logger: o.Logger, Metrics: l2.NewMetrics(o.Registry), Periodic: o.Periodic})
	if err != nil {
		return err
	}
	bgpAnn, err := newBGP(o)
	if err != nil {
		return err
	}
	var synced atomic.Bool
	sp, err := New(Options{
		NodeName: o.NodeName, Namespace: o.Namespace, OnlyOwnClass: o.OnlyOwnClass, GossipAddr: o.BindAddr,
		Reader: c, Synced: synced.Load, Writer: writer, Recorder: recorder(ctx, o.Config, scheme),
		Members: mem, L2: ann, StateFile: o.StateDir + "/speaker-state.json", Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	bgpRun := func(context.Context) error { return nil }
	if bgpAnn != nil {
		sp.opts.BGP, bgpRun = bgpAnn, bgpAnn.Run
	}
	if o.LocalVIP {
		if sp.opts.VIP, err = localVIP(o); err != nil {
			return err
		}
	}
	// On shutdown the node leaves the group first and keeps answering for
	// what it owned until the others have had time to take over: the
	// handover has no gap.
	left := make(chan struct{})
	return runAll(ctx, o.Logger,
		c.Start, sp.Run, bgpRun, sp.RunBGPStatus,
		func(ctx context.Context) error { defer close(left); return mem.Run(ctx) },
		func(ctx context.Context) error { return ann.Run(afterLeave(ctx, left, leaveGrace)) },
		func(ctx context.Context) error { return watch(ctx, c, sp.Trigger, &synced, o.Logger) },
	)
}

// newBGP is the node's BGP announcer, or nil when the node has no IPv4
// router ID (gobgp needs one): then BGPPeers are not served on this node.
func newBGP(o NodeOptions) (*bgp.Announcer, error) {
	id := o.RouterID
	if !id.IsValid() && o.BindAddr.Is4() {
		id = o.BindAddr
	}
	if !id.IsValid() {
		o.Logger.Warn("BGP off on this node: no IPv4 router ID (set --router-id when the speakers gossip over IPv6)",
			"bind_addr", o.BindAddr)
		return nil, nil
	}
	a, err := bgp.New(bgp.Options{RouterID: id, Logger: o.Logger, Metrics: bgp.NewMetrics(o.Registry), WarnAfter: o.BGPWarnAfter})
	if err != nil {
		return nil, fmt.Errorf("speaker: router id: %w", err)
	}
	return a, nil
}

// leaveGrace is how long a leaving node keeps answering after its leave
// was gossiped: the new owners' announcements go out within it.
const leaveGrace = 300 * time.Millisecond

// afterLeave is a context that ends grace after left closes (or at once if
// the node never joined).
func afterLeave(ctx context.Context, left <-chan struct{}, grace time.Duration) context.Context {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer cancel()
		select {
		case <-left:
		case <-out.Done():
			return
		}
		<-ctx.Done() // left can close early if membership failed; then stop with ctx
		time.Sleep(grace)
	}()
	return out
}

// restMapper knows every kind the speaker reads, so that nothing needs API
// discovery: a speaker must start while the API server is unreachable.
func restMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	add := func(gv schema.GroupVersion, kind, plural string, scope meta.RESTScope) {
		res := gv.WithResource(plural)
		single := gv.WithResource(strings.ToLower(kind))
		m.AddSpecific(gv.WithKind(kind), res, single, scope)
		m.AddSpecific(gv.WithKind(kind+"List"), res, single, scope)
	}
	add(corev1.SchemeGroupVersion, "Service", "services", meta.RESTScopeNamespace)
	add(corev1.SchemeGroupVersion, "Node", "nodes", meta.RESTScopeRoot)
	add(discoveryv1.SchemeGroupVersion, "EndpointSlice", "endpointslices", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "IPAddressPool", "ipaddresspools", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "L2Advertisement", "l2advertisements", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "ServiceL2Status", "servicel2statuses", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "BGPPeer", "bgppeers", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "BGPAdvertisement", "bgpadvertisements", meta.RESTScopeNamespace)
	add(corev1.SchemeGroupVersion, "Secret", "secrets", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "BGPSessionStatus", "bgpsessionstatuses", meta.RESTScopeNamespace)
	return m
}

func localVIP(o NodeOptions) (*vip.VIPs, error) {
	v, err := vip.New(vip.Options{Logger: o.Logger, StateFile: o.StateDir + "/vip-state.json", Metrics: vip.NewMetrics(o.Registry)})
	if err != nil {
		return nil, err
	}
	return v, v.Prepare()
}

func recorder(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) EventRecorder {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(ctx.Done())
	return b.NewRecorder(scheme, "pier-speaker")
}

// watch registers the speaker on every informer it reads, retrying while
// the API server is unreachable, then marks the view synced.
func watch(ctx context.Context, c cache.Cache, trigger func(), synced *atomic.Bool, log *slog.Logger) error {
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
		DeleteFunc: func(any) { trigger() },
	}
	kinds := []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&v1alpha1.IPAddressPool{}, &v1alpha1.L2Advertisement{}, &v1alpha1.ServiceL2Status{},
		&v1alpha1.BGPPeer{}, &v1alpha1.BGPAdvertisement{}, &corev1.Secret{}}
	for _, k := range kinds {
		for {
			inf, err := c.GetInformer(ctx, k, cache.BlockUntilSynced(false))
			if err == nil {
				_, err = inf.AddEventHandler(handler)
			}
			if err == nil {
				break
			}
			log.Warn("API unreachable, announcing from saved state", "kind", fmt.Sprintf("%T", k), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
	if !c.WaitForCacheSync(ctx) {
		return nil
	}
	synced.Store(true)
	trigger()
	log.Info("API view synced")
	return nil
}

// runAll runs every function until ctx ends or one fails; then it stops the
// rest and waits for them.
func runAll(ctx context.Context, log *slog.Logger, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Go(func() {
			if errs[i] = fn(ctx); errs[i] != nil {
				log.Error("speaker part stopped", "err", errs[i])
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
