package speaker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/configstatus"
	"github.com/pier-lb/pier/speaker/bgp"
)

// AnnouncementsPerObject is how many Services one BGPAnnouncementStatus
// lists: about 100 KB of JSON, far below etcd's 1.5 MB object limit.
const AnnouncementsPerObject = 1000

// AnnouncementOptions configure an AnnouncementWriter.
type AnnouncementOptions struct {
	Client    client.Client
	Namespace string // Pier's
	Node      string
	// Owner, when set, owns the objects (the speaker's Pod).
	Owner *metav1.OwnerReference
	// Every is the least time between two rounds of writes; default 1s.
	// Changes within it are written together.
	Every time.Duration
	// Verify is how often the objects are read back and repaired when
	// nothing changed; default 5 minutes.
	Verify time.Duration
	Clock  clock.Clock
	Logger *slog.Logger
}

// AnnouncementWriter keeps this node's BGPAnnouncementStatus objects
// (which Services it announces over BGP, to which peers) up to date: one
// object per AnnouncementsPerObject Services, written only when its
// content changed, at most one round per Every. It runs apart from the
// announcing loop: Set never waits for the API server.
type AnnouncementWriter struct {
	opts  AnnouncementOptions
	log   *slog.Logger
	dirty chan struct{}

	mu      sync.Mutex
	sources []BGPSource // the latest, as Set took it
	peers   []bgp.Peer  // the sessions, without passwords
	set     bool
	wrote   map[string]v1alpha1.BGPAnnouncementStatusStatus // what the objects hold, when known
}

// NewAnnouncementWriter validates opts; it starts nothing.
func NewAnnouncementWriter(opts AnnouncementOptions) (*AnnouncementWriter, error) {
	if opts.Client == nil || opts.Namespace == "" || opts.Node == "" {
		return nil, errors.New("bgp announcement status: client, namespace and node are required")
	}
	if opts.Every < 0 || opts.Verify < 0 {
		return nil, fmt.Errorf("bgp announcement status: periods %v and %v must not be negative", opts.Every, opts.Verify)
	}
	opts.Every = cmp.Or(opts.Every, time.Second)
	opts.Verify = cmp.Or(opts.Verify, 5*time.Minute)
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &AnnouncementWriter{
		opts: opts, dirty: make(chan struct{}, 1),
		log: opts.Logger.With("component", "bgp-announcement-status", "node", opts.Node),
	}, nil
}

// Set takes what this node announces (BGPDesired.Sources and Peers; nil
// when BGP is off). It keeps the slices, which the caller must not change,
// and returns at once.
func (w *AnnouncementWriter) Set(sources []BGPSource, peers []bgp.Peer) {
	w.mu.Lock()
	w.sources, w.peers, w.set = sources, peers, true
	w.mu.Unlock()
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

// reportAnnouncements hands the plan's sources to the status writer:
// none while BGP is off on this node.
func (s *Speaker) reportAnnouncements() {
	if s.opts.Announcements == nil {
		return
	}
	var sources []BGPSource
	var peers []bgp.Peer
	if s.opts.BGP != nil {
		sources = slices.Clone(s.bgp.Sources) // the writer keeps it
		for _, p := range s.bgp.Peers {
			peers = append(peers, bgp.Peer{Name: p.Name, Address: p.Address, Families: p.Families,
				NextHop4: p.NextHop4, NextHop6: p.NextHop6})
		}
	}
	s.opts.Announcements.Set(sources, peers)
}

// BGPAnnouncements lists the Services in sources with their addresses
// and the peers that get them, sorted by Service (a Service none of whose
// addresses is announced, with the peers that would get them and why
// not): a peer is listed when
// this node has a session with it (not one waiting for its password) that
// carries the address's family with a usable next hop, as the announcer
// sends. Pure.
func BGPAnnouncements(sources []BGPSource, peers []bgp.Peer) []v1alpha1.BGPServiceAnnouncement {
	byName := map[string]bgp.Peer{}
	for _, p := range peers {
		byName[p.Name] = p
	}
	by := map[string]*v1alpha1.BGPServiceAnnouncement{}
	held := map[string]*v1alpha1.BGPServiceAnnouncement{}
	for _, src := range sources {
		into := by
		if src.Withheld != "" {
			into = held
		}
		a := into[src.Service]
		if a == nil {
			a = &v1alpha1.BGPServiceAnnouncement{Service: src.Service, NotAnnounced: src.Withheld}
			into[src.Service] = a
		}
		a.Addresses = append(a.Addresses, src.Addr.String())
		for _, p := range src.Paths {
			for _, name := range p.Peers {
				if peer, ok := byName[name]; ok && sendsTo(peer, src.Addr) {
					a.Peers = append(a.Peers, name)
				}
			}
		}
	}
	for svc, a := range held { // when none of its addresses is announced
		if _, announced := by[svc]; !announced {
			by[svc] = a
		}
	}
	out := make([]v1alpha1.BGPServiceAnnouncement, 0, len(by))
	for _, svc := range slices.Sorted(maps.Keys(by)) {
		a := by[svc]
		slices.Sort(a.Addresses)
		a.Addresses = slices.Compact(a.Addresses)
		slices.Sort(a.Peers)
		a.Peers = slices.Compact(a.Peers)
		out = append(out, *a)
	}
	return out
}

// sendsTo tells whether the announcer sends addr's paths to p: its
// session carries the family (default: the family of its address) and
// has a next hop of it.
func sendsTo(p bgp.Peer, addr netip.Addr) bool {
	families := p.Families
	if len(families) == 0 {
		families = []bgp.Family{familyOfAddr(p.Address)}
	}
	if !slices.Contains(families, familyOfAddr(addr)) {
		return false
	}
	_, send := p.ExportNextHop(addr.Is6())
	return send
}

func familyOfAddr(a netip.Addr) bgp.Family {
	if a.Is6() && !a.Is4In6() {
		return bgp.IPv6Unicast
	}
	return bgp.IPv4Unicast
}

// BGPAnnouncementObjects splits a node's announcements into its objects'
// statuses, by object name: the first is named for the node, the next
// "<node>.part2" and on. A node announcing nothing has none. Pure.
func BGPAnnouncementObjects(node string, all []v1alpha1.BGPServiceAnnouncement) map[string]v1alpha1.BGPAnnouncementStatusStatus {
	out := map[string]v1alpha1.BGPAnnouncementStatusStatus{}
	for i := 0; i*AnnouncementsPerObject < len(all); i++ {
		part := all[i*AnnouncementsPerObject : min(len(all), (i+1)*AnnouncementsPerObject)]
		out[announcementName(node, i)] = v1alpha1.BGPAnnouncementStatusStatus{
			Node: node, ServiceCount: int32(len(part)), Services: part,
		}
	}
	return out
}

func announcementName(node string, i int) string {
	name := node
	if i > 0 {
		name = fmt.Sprintf("%s.part%d", node, i+1)
	}
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:230] + "-" + hex.EncodeToString(sum[:6])
}

// Run writes after each change, at most once per Every, until ctx ends;
// a failed round is retried after 5 Every, and the objects are read back
// every Verify.
func (w *AnnouncementWriter) Run(ctx context.Context) error {
	forget := func() {
		w.mu.Lock()
		w.wrote = nil // read them back
		w.mu.Unlock()
	}
	return configstatus.WriteLoop(ctx, configstatus.LoopOptions{Every: w.opts.Every, Verify: w.opts.Verify,
		Clock: w.opts.Clock, Dirty: w.dirty, Forget: forget, Write: w.write, Log: w.log, What: "bgp announcement status"})
}

// write makes this node's objects hold the latest announcements: it
// deletes those no longer needed and writes those whose content changed.
func (w *AnnouncementWriter) write(ctx context.Context) error {
	w.mu.Lock()
	sources, peers, set, wrote := w.sources, w.peers, w.set, w.wrote
	w.mu.Unlock()
	if !set {
		return nil
	}
	want := BGPAnnouncementObjects(w.opts.Node, BGPAnnouncements(sources, peers))
	if wrote != nil && maps.EqualFunc(want, wrote, equalAnnouncements) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var have v1alpha1.BGPAnnouncementStatusList
	if err := w.opts.Client.List(ctx, &have, client.InNamespace(w.opts.Namespace),
		client.MatchingLabels{v1alpha1.LabelNode: w.opts.Node}); err != nil {
		return fmt.Errorf("list bgp announcement status: %w", err)
	}
	byName := map[string]*v1alpha1.BGPAnnouncementStatus{}
	for i := range have.Items {
		obj := &have.Items[i]
		if _, ok := want[obj.Name]; !ok {
			if err := client.IgnoreNotFound(w.opts.Client.Delete(ctx, obj)); err != nil {
				return fmt.Errorf("delete bgp announcement status %s: %w", obj.Name, err)
			}
			continue
		}
		byName[obj.Name] = obj
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if err := w.apply(ctx, name, byName[name], want[name]); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.wrote = want
	w.mu.Unlock()
	return nil
}

func (w *AnnouncementWriter) apply(ctx context.Context, name string, obj *v1alpha1.BGPAnnouncementStatus, st v1alpha1.BGPAnnouncementStatusStatus) error {
	if obj == nil {
		obj = &v1alpha1.BGPAnnouncementStatus{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: w.opts.Namespace, Labels: map[string]string{v1alpha1.LabelNode: w.opts.Node},
		}}
		w.own(obj)
		err := w.opts.Client.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			err = w.opts.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		}
		if err != nil {
			return fmt.Errorf("create bgp announcement status %s: %w", name, err)
		}
	}
	if w.own(obj) {
		if err := w.opts.Client.Update(ctx, obj); err != nil {
			return fmt.Errorf("own bgp announcement status %s: %w", name, err)
		}
	}
	if equalAnnouncements(obj.Status, st) {
		return nil
	}
	obj.Status = st
	if err := w.opts.Client.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("bgp announcement status %s: %w", name, err)
	}
	return nil
}

func (w *AnnouncementWriter) own(obj *v1alpha1.BGPAnnouncementStatus) bool {
	o := w.opts.Owner
	if o == nil || len(obj.OwnerReferences) == 1 && obj.OwnerReferences[0].UID == o.UID {
		return false
	}
	obj.OwnerReferences = []metav1.OwnerReference{*o}
	return true
}

func equalAnnouncements(a, b v1alpha1.BGPAnnouncementStatusStatus) bool {
	return a.Node == b.Node && a.ServiceCount == b.ServiceCount &&
		slices.EqualFunc(a.Services, b.Services, func(x, y v1alpha1.BGPServiceAnnouncement) bool {
			return x.Service == y.Service && slices.Equal(x.Addresses, y.Addresses) && slices.Equal(x.Peers, y.Peers) &&
				x.NotAnnounced == y.NotAnnounced
		})
}
