package speaker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/internal/apicache"
	"github.com/pier-lb/pier/internal/configstatus"
	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/speaker/bfd"
	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/l2"
	"github.com/pier-lb/pier/speaker/members"
	"github.com/pier-lb/pier/speaker/vip"
)

// NodeOptions configure a whole speaker process.
type NodeOptions struct {
	Config    *rest.Config
	NodeName  string
	Namespace string
	// PasswordNamespace holds the BGP password Secrets (BGPPeer
	// passwordSecret), the only namespace whose Secrets the speaker
	// caches; default config.DefaultPasswordNamespace.
	PasswordNamespace string
	OnlyOwnClass      bool
	// BindAddr is where memberlist gossips (the node's address on the
	// network the speakers share); BindPort defaults to 7946.
	BindAddr  netip.Addr
	BindPort  int
	SecretKey []byte
	// SecondaryKeys are gossip keys accepted besides SecretKey during a
	// key rotation (members.Options.SecondaryKeys).
	SecondaryKeys [][]byte
	// MemberTimers tune the speakers' failure detection (members.Profile);
	// zero fields take members.FastLAN's values.
	MemberTimers members.Timers
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
	// Health, when set, gets the speaker's checks for /healthz: the API
	// cache synced, or the API server unreachable (daemon.APICheck).
	Health *daemon.Health
	// PodName and PodUID name the speaker's Pod, which then owns the
	// ServiceL2Status objects it writes (Options.Owner); empty outside a
	// Pod.
	PodName string
	PodUID  types.UID
}

// RunNode runs a speaker with its API cache, membership and announcers
// until ctx ends. It does not need the API server to start: until the
// caches sync it announces from the saved state.
func RunNode(ctx context.Context, o NodeOptions) error {
	scheme, err := nodeScheme()
	if err != nil {
		return err
	}
	o.PasswordNamespace = cmp.Or(o.PasswordNamespace, config.DefaultPasswordNamespace)
	mapper := restMapper()
	c, err := newAPICache(o.Config, scheme, mapper, o.Namespace, o.PasswordNamespace, o.NodeName)
	if err != nil {
		return fmt.Errorf("speaker cache: %w", err)
	}
	wcfg := rest.CopyConfig(o.Config)
	wcfg.QPS, wcfg.Burst = statusQPS, statusBurst
	writer, err := client.New(wcfg, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		return err
	}
	mem, err := members.New(members.Options{
		Name: o.NodeName, BindAddr: o.BindAddr, BindPort: o.BindPort, SecretKey: o.SecretKey,
		SecondaryKeys: o.SecondaryKeys, Timers: o.MemberTimers,
		Logger: o.Logger, Metrics: members.NewMetrics(o.Registry),
	})
	if err != nil {
		return err
	}
	ann, err := l2.New(l2.Options{Logger: o.Logger, Metrics: l2.NewMetrics(o.Registry), Periodic: o.Periodic})
	if err != nil {
		return err
	}
	var synced atomic.Bool
	if o.Health != nil {
		ping, err := daemon.APIPing(o.Config)
		if err != nil {
			return err
		}
		o.Health.Add("api", daemon.APICheck(synced.Load, ping))
	}
	opts := Options{
		NodeName: o.NodeName, Namespace: o.Namespace, PasswordNamespace: o.PasswordNamespace,
		OnlyOwnClass: o.OnlyOwnClass, GossipAddr: o.BindAddr,
		Reader: c, Synced: synced.Load, Writer: writer, Recorder: recorder(ctx, o.Config, scheme),
		Members: mem, L2: ann, StateFile: o.StateDir + "/speaker-state.json", StateEvery: DefaultStateEvery, Logger: o.Logger,
		Owner: podOwner(o.PodName, o.PodUID), Metrics: NewMetrics(o.Registry),
	}
	cfgStatus, err := configstatus.New(configstatus.Options{
		Client: writer, Namespace: o.Namespace, Node: o.NodeName, Component: v1alpha1.ComponentSpeaker,
		Owner: opts.Owner, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	opts.ConfigStatus = cfgStatus
	announced, err := NewAnnouncementWriter(AnnouncementOptions{
		Client: writer, Namespace: o.Namespace, Node: o.NodeName, Owner: opts.Owner, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	opts.Announcements = announced
	bgpRun, err := withBGP(&opts, o)
	if err != nil {
		return err
	}
	if o.LocalVIP {
		if opts.VIP, err = localVIP(o); err != nil {
			return err
		}
	}
	sp, err := New(opts)
	if err != nil {
		return err
	}
	crds, err := apicache.CRDs(o.Config, v1alpha1.GroupVersion, v1alpha1.Resources...)
	if err != nil {
		return err
	}
	// On shutdown the node leaves the group first and keeps answering for
	// each address it owned until its successor announces it, or
	// leaveGrace has passed: the handover has neither gap nor overlap.
	left := make(chan struct{})
	return daemon.RunAll(ctx, o.Logger,
		c.Start, sp.Run, bgpRun, sp.RunBGPStatus, sp.RunL2Status, cfgStatus.Run, announced.Run,
		func(ctx context.Context) error {
			defer close(left)
			context.AfterFunc(ctx, ann.Yield) // from the start of the leave
			return mem.Run(ctx)
		},
		func(ctx context.Context) error { return ann.Run(afterLeave(ctx, clock.RealClock{}, left, leaveGrace)) },
		func(ctx context.Context) error { return sp.watchAPI(ctx, c, &synced, o.Logger, crds) },
	)
}

// nodeScheme knows the kinds the speaker reads and writes.
func nodeScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, v1alpha1.AddToScheme(scheme)
}

// withBGP gives opts the node's BGP announcer and returns its Run; BGP is
// off (opts.BGP unset, a Run that returns at once) when the node has no
// IPv4 router ID, which gobgp needs: then BGPPeers are not served here.
func withBGP(opts *Options, o NodeOptions) (func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	id := o.RouterID
	if !id.IsValid() && o.BindAddr.Is4() {
		id = o.BindAddr
	}
	if !id.IsValid() {
		o.Logger.Warn("BGP off on this node: no IPv4 router ID (set --router-id when the speakers gossip over IPv6)",
			"bind_addr", o.BindAddr)
		return off, nil
	}
	a, err := bgp.New(bgp.Options{RouterID: id, Logger: o.Logger, Metrics: bgp.NewMetrics(o.Registry), WarnAfter: o.BGPWarnAfter})
	if err != nil {
		return off, fmt.Errorf("speaker: router id: %w", err)
	}
	bfd.NewCollector(a.BFDMux(), o.Registry)
	opts.BGP = a
	return a.Run, nil
}

// statusQPS and statusBurst bound the speaker's status writes (client-go's
// default is 5 and 10). A node writes two requests per Service it takes
// (the ServiceL2Status and its status) and nothing while nothing changes:
// at 20 a node that owns 1,000 Services catches up in under 2 minutes,
// not 7, and 100 speakers starting at once stay within what the API
// server's priority and fairness spreads over its workload classes.
const (
	statusQPS   = 20
	statusBurst = 40
)

// DefaultStateEvery is how often at most a speaker writes its state file
// after changes: a restart during an API outage may start from a state up
// to this old (plus Resync), and a burst of changes writes the file once.
const DefaultStateEvery = 5 * time.Second

// leaveGrace is how long a leaving node keeps answering after its leave
// was gossiped: the new owners' announcements go out within it.
const leaveGrace = 300 * time.Millisecond

// afterLeave is a context that ends grace (on clk) after both left closed
// and ctx ended.
func afterLeave(ctx context.Context, clk clock.Clock, left <-chan struct{}, grace time.Duration) context.Context {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer cancel()
		select {
		case <-left:
		case <-out.Done():
			return
		}
		<-ctx.Done() // left can close early if membership failed; then stop with ctx
		<-clk.After(grace)
	}()
	return out
}

// watched are the kinds the speaker caches.
var watched = []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
	&v1alpha1.IPAddressPool{}, &v1alpha1.L2Advertisement{}, &v1alpha1.ServiceL2Status{},
	&v1alpha1.BGPPeer{}, &v1alpha1.BGPAdvertisement{}, &corev1.Secret{}}

// restMapper knows every kind the speaker reads, so that nothing needs API
// discovery: a speaker must start while the API server is unreachable.
func restMapper() meta.RESTMapper {
	core, disc, pier := corev1.SchemeGroupVersion, discoveryv1.SchemeGroupVersion, v1alpha1.GroupVersion
	return apicache.Mapper(
		apicache.Kind{GroupVersion: core, Kind: "Service", Plural: "services", Namespaced: true},
		apicache.Kind{GroupVersion: core, Kind: "Node", Plural: "nodes"},
		apicache.Kind{GroupVersion: core, Kind: "Secret", Plural: "secrets", Namespaced: true},
		apicache.Kind{GroupVersion: disc, Kind: "EndpointSlice", Plural: "endpointslices", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "IPAddressPool", Plural: "ipaddresspools", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "L2Advertisement", Plural: "l2advertisements", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "ServiceL2Status", Plural: "servicel2statuses", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "BGPPeer", Plural: "bgppeers", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "BGPAdvertisement", Plural: "bgpadvertisements", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "BGPSessionStatus", Plural: "bgpsessionstatuses", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "BGPAnnouncementStatus", Plural: "bgpannouncementstatuses", Namespaced: true},
		apicache.Kind{GroupVersion: pier, Kind: "ConfigurationStatus", Plural: "configurationstatuses", Namespaced: true},
	)
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

// podOwner is the owner reference to the speaker's Pod, or nil outside one.
func podOwner(name string, uid types.UID) *metav1.OwnerReference {
	if name == "" || uid == "" {
		return nil
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: name, UID: uid}
}
