package speaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/l2"
)

// Membership is the gossip layer (members.Members).
type Membership interface {
	Live() []string
	// Settled reports whether Live can be acted on: a starting node sees
	// itself alone until it has heard from its peers.
	Settled() bool
	MetaOf(name string) []byte
	SetMeta(meta []byte) error
	SetPeers(peers []string) error
	Changes() <-chan struct{}
}

// L2Announcer takes the whole set this node announces (l2.Announcer).
type L2Announcer interface {
	Set(ctx context.Context, desired []l2.Announcement) error
	// Reannounce sends a gratuitous frame for every address served.
	Reannounce()
}

// BGPAnnouncer takes this node's whole BGP session and path sets
// (bgp.Announcer).
type BGPAnnouncer interface {
	SetPeers(ctx context.Context, peers []bgp.Peer) error
	SetPaths(ctx context.Context, paths []bgp.Path) error
	// Status reports the sessions; Changes is closed at the next change of
	// a session's state.
	Status() []bgp.PeerStatus
	Changes() <-chan struct{}
}

// ConfigReporter takes each parse result of the configuration, nil when
// every object parsed (configstatus.Writer).
type ConfigReporter interface {
	Set(err error)
}

// VIPSetter puts owned addresses on a local interface (vip.VIPs).
type VIPSetter interface {
	Set(ctx context.Context, addrs []netip.Addr) error
}

// Options configures a Speaker.
type Options struct {
	NodeName  string
	Namespace string // Pier's configuration
	// PasswordNamespace holds the BGP password Secrets, the only Secrets
	// the speaker reads; default config.DefaultPasswordNamespace.
	PasswordNamespace string
	OnlyOwnClass      bool
	// GossipAddr is where this node's speaker gossips; peers are the other
	// nodes' internal addresses of the same family.
	GossipAddr netip.Addr
	// Reader reads the cached API objects; Synced reports whether its
	// caches hold a full view (false while the API server was never
	// reached since start). It indexes EndpointSlices by
	// sliceServiceIndex (read after ServiceChanged), as newAPICache's
	// does, which holds of the ServiceL2Status objects this node's only.
	Reader client.Reader
	Synced func() bool
	// Writer writes ServiceL2Status objects and may be nil (no status). It
	// also lists other nodes' objects from the API server (not cached).
	Writer client.Client
	// Owner, when set, owns the ServiceL2Status objects this speaker
	// writes: the speaker's Pod, so that they go with it (helm uninstall,
	// a node drained) instead of outliving every speaker.
	Owner      *metav1.OwnerReference
	Recorder   EventRecorder
	Members    Membership
	L2         L2Announcer
	BGP        BGPAnnouncer // optional: unset, BGP is off on this node
	VIP        VIPSetter    // optional: unset, owned addresses stay off lo
	Interfaces func() ([]Iface, error)
	// StateFile keeps the last targets, peers and BGP plan on the node.
	StateFile string
	// StateEvery is the least time between two writes of the state file
	// after changes (the last is written on shutdown too). Default 0:
	// after every change; RunNode sets DefaultStateEvery.
	StateEvery time.Duration
	// StatusEvery is the least time between two rounds of status writes,
	// ServiceL2Status and BGPSessionStatus (they follow changes). Default
	// 1s.
	StatusEvery time.Duration
	// Resync bounds how long a change that raised no event (a link state)
	// can go unnoticed. Default 1s.
	Resync time.Duration
	Logger *slog.Logger
	Clock  clock.WithTicker
	// Metrics may be nil (not counted).
	Metrics *Metrics
	// ConfigStatus, when set, gets every parse of the configuration
	// (configstatus.Writer: this node's ConfigurationStatus).
	ConfigStatus ConfigReporter
	// Announcements, when set, gets every BGP plan's sources and sessions
	// (AnnouncementWriter: this node's BGPAnnouncementStatus).
	Announcements interface {
		Set(sources []BGPSource, peers []bgp.Peer)
	}
}

// Speaker recomputes and applies this node's announcements whenever
// anything it depends on changes.
type Speaker struct {
	opts      Options
	log       *slog.Logger
	trigger   chan struct{}
	owned     map[netip.Addr]Ownership // what this node announced last
	report    *l2Report                // what RunL2Status writes
	targets   []Target
	bgp       BGPDesired
	passwords map[string]string // BGP TCP MD5 keys from Secrets, in memory only
	peers     []string          // the other speakers' addresses (memberlist peers)
	saved     state             // what the state file holds
	savedAt   time.Time         // when it was written
	stateErr  string            // the last state-file write error, "" once written
	meta      []byte
	live      []string          // the live members at the last settled sync
	configErr string            // the configuration faults last reported
	invalid   map[string]int    // objects left out of the configuration, by kind
	waiting   bool              // the last sync waited for the view to settle
	failing   map[string]string // the last error of each part applied, while it fails

	// apiChanged: the API view may have changed since the targets were
	// last computed from it (informer events set it; a pass that reads
	// clears it). Idle passes read nothing from the API.
	apiChanged atomic.Bool
	// dirty are the Services (namespace/name) changed since the last
	// pass (ServiceChanged): a pass reads them alone, from view.
	dirtyMu sync.Mutex
	dirty   map[string]bool
	view    *apiView // the API as read last; nil before the first read
	// plan is the last L2 plan, of planLive and of targets less planDel
	// plus planAdd (the targets refreshServices changed since); while
	// planValid, a pass with the same members plans the changed targets
	// alone.
	plan             []Ownership
	planLive         []Member
	planValid        bool
	planDel, planAdd []Target
	// planFull says that the last l2Plan planned everything; else
	// planTouched are the addresses whose owners it may have changed.
	planFull    bool
	planTouched []netip.Addr
	// gen counts the changes of targets and BGP plan; lastPass is what the
	// last pass acted on. A pass whose view equals lastPass, with
	// no part failing, has nothing to do.
	gen      uint64
	lastPass *passView
	unsaved  *state // a state the file does not hold yet (saveDue)

	bgpMu    sync.Mutex
	bgpView  BGPDesired // the plan last applied, for the status writer
	bgpWrote map[string]v1alpha1.BGPSessionStatusStatus
}

// New validates opts and fills in the defaults; it starts nothing.
func New(opts Options) (*Speaker, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("speaker: %w", err)
	}
	s := &Speaker{
		opts:     opts,
		log:      opts.Logger.With("component", "speaker", "node", opts.NodeName),
		trigger:  make(chan struct{}, 1),
		owned:    map[netip.Addr]Ownership{},
		planFull: true,
		report:   newL2Report(),
		failing:  map[string]string{},
	}
	s.apiChanged.Store(true) // nothing read yet
	return s, nil
}

// validate checks that every part the loop uses is there (BGP and VIP may
// be left unset: off) and sets the defaults.
func (o *Options) validate() error {
	if o.NodeName == "" || o.Namespace == "" {
		return errors.New("node name and namespace are required")
	}
	for _, p := range []struct {
		name     string
		v        any
		optional bool
	}{
		{"API reader", o.Reader, false}, {"membership", o.Members, false}, {"l2 announcer", o.L2, false},
		{"bgp announcer", o.BGP, true}, {"vip setter", o.VIP, true}, {"clock", o.Clock, true},
		{"config status", o.ConfigStatus, true}, {"bgp announcement status", o.Announcements, true},
	} {
		switch {
		case p.v == nil && !p.optional:
			return fmt.Errorf("%s is required", p.name)
		case p.v != nil && nilPointer(p.v):
			return fmt.Errorf("%s is a nil %T (leave an optional part unset to turn it off)", p.name, p.v)
		}
	}
	if o.Synced == nil {
		return errors.New("synced (whether the API cache holds a full view) is required")
	}
	if o.Resync < 0 || o.StatusEvery < 0 || o.StateEvery < 0 {
		return fmt.Errorf("resync %v, status period %v and state period %v must not be negative", o.Resync, o.StatusEvery, o.StateEvery)
	}
	if o.Interfaces == nil {
		o.Interfaces = LocalIfaces
	}
	o.PasswordNamespace = cmp.Or(o.PasswordNamespace, config.DefaultPasswordNamespace)
	o.Resync = cmp.Or(o.Resync, time.Second)
	o.StatusEvery = cmp.Or(o.StatusEvery, time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return nil
}

// nilPointer tells whether v holds a nil pointer: a part that would panic
// at its first use, not at start.
func nilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// Trigger asks for a recomputation; calls coalesce.
func (s *Speaker) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// APIChanged says that the API view changed (an informer event) and asks
// for a pass, which reads it all again (see ServiceChanged for a change
// of one Service).
func (s *Speaker) APIChanged() {
	s.apiChanged.Store(true)
	s.Trigger()
}

// Run recomputes on every trigger, membership change and resync tick until
// ctx ends. It starts from the persisted state so that a restart during an
// API outage announces at once. The API is read only after it changed
// (APIChanged), and the plan made again only when its inputs changed: an
// idle pass reads the local interfaces and the members, nothing that grows
// with the Services.
func (s *Speaker) Run(ctx context.Context) error {
	s.restore()
	tick := s.opts.Clock.NewTicker(s.opts.Resync)
	defer tick.Stop()
	for ctx.Err() == nil {
		s.sync(ctx)
		select {
		case <-ctx.Done():
		case <-s.trigger:
		case <-s.opts.Members.Changes():
		case <-tick.C():
		}
	}
	s.saveNow() // what StateEvery held back
	return nil
}

// sync is one pass: targets (from the API when synced, else the saved
// ones), live members, plan, then the announcers and the status.
func (s *Speaker) sync(ctx context.Context) {
	s.refresh(ctx)
	s.saveDue()
	live, err := s.liveMembers()
	if err != nil {
		s.log.Warn("local interfaces", "err", err)
	}
	if ctx.Err() != nil {
		// Shutting down: the node leaves the group and its view is torn
		// down (it may see itself alone); acting on it would claim
		// addresses the others own. The view was read after the end began
		// if it was torn, so this check is enough.
		return
	}
	view := &passView{gen: s.gen, settled: s.opts.Members.Settled(), live: live}
	if len(s.failing) == 0 && s.lastPass.equal(view) {
		return // nothing changed and nothing to retry
	}
	s.lastPass = view
	plan := s.l2Plan(live)
	ann := Announcements(plan, s.opts.NodeName)
	s.applied(ctx, partL2, s.opts.L2.Set(ctx, ann))
	if s.joined(live) {
		// The newcomer may have claimed addresses before it knew their
		// owners; clients that heard it learn the owners' MACs again.
		s.opts.L2.Reannounce()
	}
	s.applyBGP(ctx)
	if s.opts.VIP != nil {
		local := ownedAddrs(ann)
		for _, a := range s.bgp.Addrs {
			if !slices.Contains(local, a) {
				local = append(local, a)
			}
		}
		s.applied(ctx, partVIP, s.opts.VIP.Set(ctx, local))
	}
	s.reportOwnership(plan)
}

// refresh reads what changed in the API view: everything after
// APIChanged (or before anything was read), else the Services named by
// ServiceChanged. Dirty Services are taken before the full read, so a
// change that arrives during it is read at the next pass.
func (s *Speaker) refresh(ctx context.Context) {
	if !s.opts.Synced() {
		return
	}
	dirty := s.takeDirty()
	var err error
	switch {
	case s.apiChanged.Swap(false) || s.view == nil:
		err = s.refreshTargets(ctx)
	case len(dirty) > 0:
		err = s.refreshServices(ctx, dirty)
	}
	if err != nil {
		s.apiChanged.Store(true) // read it all again at the next pass
		s.log.Warn("reading the API cache failed, keeping the last targets", "err", err)
	}
}

// l2Plan elects the owners of the L2 targets among the live members, once
// the membership view has settled; before that this node would see itself
// alone and claim every address, so it announces none.
func (s *Speaker) l2Plan(live []Member) []Ownership {
	if !s.opts.Members.Settled() {
		if !s.waiting {
			s.log.Info("waiting to hear from the other speakers before announcing L2 addresses")
		}
		s.waiting, s.planValid, s.planFull = true, false, true
		return nil
	}
	s.waiting = false
	s.planFull, s.planTouched = false, nil
	switch {
	case !s.planValid || !reflect.DeepEqual(live, s.planLive) || anyBalanced(s.planDel) || anyBalanced(s.planAdd):
		// A balanced target's owner depends on every other balanced one.
		s.plan, s.planFull = Plan(s.targets, live), true
	case len(s.planDel)+len(s.planAdd) > 0:
		del := make([]Ownership, len(s.planDel))
		for i, t := range s.planDel {
			del[i] = Ownership{Addr: t.Addr, Service: t.Service}
			s.planTouched = append(s.planTouched, t.Addr)
		}
		for _, t := range s.planAdd {
			s.planTouched = append(s.planTouched, t.Addr)
		}
		s.plan = spliced(s.plan, del, Plan(s.planAdd, live), compareOwnership)
	}
	s.planLive, s.planValid, s.planDel, s.planAdd = live, true, nil, nil
	return s.plan
}

func anyBalanced(ts []Target) bool {
	return slices.ContainsFunc(ts, func(t Target) bool { return t.Balanced })
}

// targetsChanged tells the planner which targets changed; a second change
// before it planned the first makes it plan everything again (the lists
// would name a target twice).
func (s *Speaker) targetsChanged(del, add []Target) {
	if len(s.planDel)+len(s.planAdd) > 0 {
		s.planValid = false
	}
	s.planDel, s.planAdd = del, add
}

// joined tells whether a member joined since the last settled sync, and
// records the live set.
func (s *Speaker) joined(live []Member) bool {
	if !s.opts.Members.Settled() {
		return false
	}
	names := make([]string, len(live))
	for i, m := range live {
		names[i] = m.Name
	}
	before := s.live
	s.live = names
	if before == nil {
		return false
	}
	for _, n := range names {
		if !slices.Contains(before, n) {
			return true
		}
	}
	return false
}

// liveMembers publishes this node's interfaces and reads everyone's.
func (s *Speaker) liveMembers() ([]Member, error) {
	local, err := s.opts.Interfaces()
	if err != nil {
		return nil, err
	}
	if meta, err := EncodeIfaces(local); err == nil && !slices.Equal(meta, s.meta) {
		if err := s.opts.Members.SetMeta(meta); err == nil {
			s.meta = meta
		}
	}
	var out []Member
	for _, name := range s.opts.Members.Live() {
		if name == s.opts.NodeName {
			out = append(out, Member{Name: name, Ifaces: local})
			continue
		}
		out = append(out, Member{Name: name, Ifaces: DecodeIfaces(s.opts.Members.MetaOf(name))})
	}
	return out, nil
}

// setBGP takes a new BGP plan and says loudly which sessions wait for a
// password.
func (s *Speaker) setBGP(d BGPDesired) {
	for name, why := range d.Waiting {
		if s.bgp.Waiting[name] != why {
			s.log.Error("BGP session with peer not started: it needs a TCP MD5 password, and a session with a password never comes up without it",
				"peer", name, "reason", why)
		}
	}
	for name := range s.bgp.Waiting {
		if _, still := d.Waiting[name]; !still {
			s.log.Info("BGP peer's password available; starting the session", "peer", name)
		}
	}
	if s.opts.BGP == nil && len(d.Peers)+len(d.Waiting) > 0 && len(s.bgp.Peers)+len(s.bgp.Waiting) == 0 {
		s.log.Warn("BGPPeers select this node but BGP is off here: no IPv4 router ID (set --router-id)")
	}
	s.bgp = d
	s.reportAnnouncements()
}

// applyBGP hands the last BGP plan to the announcer; it keeps announcing
// it while the API server is unreachable.
func (s *Speaker) applyBGP(ctx context.Context) {
	s.bgpMu.Lock()
	s.bgpView = s.bgp
	s.bgpMu.Unlock()
	if s.opts.BGP == nil {
		return
	}
	s.applied(ctx, partBGPPeers, s.opts.BGP.SetPeers(ctx, s.bgp.Peers))
	s.applied(ctx, partBGPPaths, s.opts.BGP.SetPaths(ctx, s.bgp.Paths))
}

// applied takes what applying a part returned. The announcers apply all
// they can and return what they could not, so a failure leaves the rest
// announced; it is counted every pass, logged once per distinct error,
// and retried at the next pass (every Resync at the latest), which hands
// over the whole set again.
func (s *Speaker) applied(ctx context.Context, part string, err error) {
	if err == nil {
		if _, was := s.failing[part]; was {
			delete(s.failing, part)
			s.log.Info("applied again", "part", part)
		}
		return
	}
	if ctx.Err() != nil {
		return // stopping: not a failure of the part
	}
	s.opts.Metrics.applyFailed(part)
	if msg := err.Error(); msg != s.failing[part] {
		s.failing[part] = msg
		s.log.Warn("not all applied: the rest is, and the next pass tries again", "part", part, "err", err)
	}
}

// passView is what a pass plans from: the targets and BGP plan (by
// generation) and the membership view.
type passView struct {
	gen     uint64
	settled bool
	live    []Member
}

func (v *passView) equal(w *passView) bool {
	return v != nil && w != nil && v.gen == w.gen && v.settled == w.settled && reflect.DeepEqual(v.live, w.live)
}

func ownedAddrs(ann []l2.Announcement) []netip.Addr {
	var out []netip.Addr
	for _, a := range ann {
		if !slices.Contains(out, a.Addr) {
			out = append(out, a.Addr)
		}
	}
	return out
}
