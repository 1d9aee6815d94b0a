package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// reportOwnership logs what changed and hands what this node owns to the
// status writer (RunL2Status): an event on the Service when this node takes
// an address over, and one ServiceL2Status per Service it announces. It
// never waits for the API server.
func (s *Speaker) reportOwnership(plan []Ownership) {
	mine, touched := s.mine(plan)
	var taken []Ownership
	changed := map[string]bool{} // Services whose status changes
	for _, addr := range touched {
		o, now := mine[addr]
		prev, before := s.owned[addr]
		announced, was := now && o.Withheld == "", before && prev.Withheld == ""
		if announced && (!was || !slices.Equal(prev.Ifaces, o.Ifaces)) {
			s.log.Info("taking over", "addr", addr, "service", o.Service, "iface", strings.Join(o.Ifaces, ","), "live", s.opts.Members.Live())
			taken = append(taken, o)
		}
		if was && !announced {
			s.log.Info("handing over", "addr", addr, "service", prev.Service, "live", s.opts.Members.Live())
		}
		if now != before || now && !sameOwnership(prev, o) {
			if now {
				changed[o.Service] = true
			}
			if before {
				changed[prev.Service] = true
			}
		}
	}
	s.owned = mine
	s.report.set(mine, taken, changed)
}

// mine is what this node owns in plan, by address (of Services sharing an
// address, the last in the plan), and the addresses where that may differ
// from owned: all of them after a full plan, else those l2Plan touched.
// owned itself is not changed: the status writer reads it.
func (s *Speaker) mine(plan []Ownership) (map[netip.Addr]Ownership, []netip.Addr) {
	if s.planFull {
		mine := map[netip.Addr]Ownership{}
		for _, o := range plan {
			if o.Node == s.opts.NodeName {
				mine[o.Addr] = o
			}
		}
		touched := slices.Collect(maps.Keys(mine))
		for addr := range s.owned {
			if _, ok := mine[addr]; !ok {
				touched = append(touched, addr)
			}
		}
		return mine, touched
	}
	if len(s.planTouched) == 0 {
		return s.owned, nil
	}
	mine := maps.Clone(s.owned)
	for _, addr := range s.planTouched {
		delete(mine, addr)
		i, _ := slices.BinarySearchFunc(plan, addr, func(o Ownership, a netip.Addr) int { return o.Addr.Compare(a) })
		for ; i < len(plan) && plan[i].Addr == addr; i++ {
			if plan[i].Node == s.opts.NodeName {
				mine[addr] = plan[i]
			}
		}
	}
	return mine, s.planTouched
}

// l2Report carries what this node owns from the announcing loop to the
// status writer; the latest value wins.
type l2Report struct {
	mu    sync.Mutex
	mine  map[netip.Addr]Ownership
	taken []Ownership // takeovers not yet told by an event
	// changed are Services ("namespace/name") whose status changed since
	// the writer last took the report: what this node owns of them, or
	// their ServiceL2Status objects in the API (by others than this node).
	changed map[string]bool
	dirty   chan struct{}
}

func newL2Report() *l2Report {
	return &l2Report{mine: map[netip.Addr]Ownership{}, dirty: make(chan struct{}, 1)}
}

func (r *l2Report) set(mine map[netip.Addr]Ownership, taken []Ownership, changed map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(taken) == 0 && len(changed) == 0 {
		return
	}
	r.mine, r.taken = mine, append(r.taken, taken...)
	r.mark(changed)
}

// mark adds to changed and wakes the writer; r.mu is held.
func (r *l2Report) mark(svcs map[string]bool) {
	if r.changed == nil {
		r.changed = map[string]bool{}
	}
	for svc := range svcs {
		r.changed[svc] = true
	}
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// statusChanged asks the writer to check the objects of Service svc again.
func (r *l2Report) statusChanged(svc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mark(map[string]bool{svc: true})
}

func (r *l2Report) take() (map[netip.Addr]Ownership, []Ownership, map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	taken, changed := r.taken, r.changed
	r.taken, r.changed = nil, nil
	return r.mine, taken, changed
}

func sameOwnership(a, b Ownership) bool {
	return a.Service == b.Service && a.Node == b.Node && slices.Equal(a.Ifaces, b.Ifaces) && a.Withheld == b.Withheld
}

// RunL2Status writes what this node owns (ServiceL2Status objects, takeover
// events) until ctx ends: after each change, at most once per StatusEvery,
// and while writes fail every five StatusEvery. It runs apart from the
// announcing loop, so a slow, throttled or unreachable API server never
// delays a takeover.
//
// It lists the objects once, at its first round, and from then on writes
// only what changed against what it wrote: Services it took or let go,
// and those whose objects someone else deleted or another node created
// (statusChanged). Nothing is read or written while nothing changes.
func (s *Speaker) RunL2Status(ctx context.Context) error {
	if s.opts.Writer == nil {
		return nil
	}
	w := &l2Writer{s: s}
	failing := false
	for {
		var retry <-chan time.Time
		if failing {
			retry = s.opts.Clock.After(5 * s.opts.StatusEvery)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.report.dirty:
		case <-retry:
		}
		if !s.opts.Synced() {
			failing = true // try again later
			continue
		}
		mine, taken, changed := s.report.take()
		s.announceEvents(ctx, taken)
		err := w.write(ctx, mine, changed)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("l2 status not written; retrying", "err", err)
		case err == nil && failing:
			s.log.Info("l2 status written again")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-s.opts.Clock.After(s.opts.StatusEvery):
		}
	}
}

// announceEvents records one event per Service naming all the addresses
// this node took over: client-go folds events that differ only in their
// note into one series, so one event per address would hide all but the
// first.
func (s *Speaker) announceEvents(ctx context.Context, taken []Ownership) {
	if s.opts.Recorder == nil || !s.opts.Synced() || len(taken) == 0 {
		return
	}
	slices.SortFunc(taken, func(a, b Ownership) int { return a.Addr.Compare(b.Addr) })
	addrs, ifaces := map[string][]string{}, map[string][]string{}
	for _, o := range taken {
		addrs[o.Service] = append(addrs[o.Service], o.Addr.String())
		ifaces[o.Service] = append(ifaces[o.Service], o.Ifaces...)
	}
	for svcKey, list := range addrs {
		ns, name, _ := strings.Cut(svcKey, "/")
		var svc corev1.Service
		if err := s.opts.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			continue
		}
		ifs := slices.Compact(slices.Sorted(slices.Values(ifaces[svcKey])))
		s.opts.Recorder.Eventf(&svc, nil, corev1.EventTypeNormal, "AnnouncedByNode", "Announce",
			"%s announces %s on %s", s.opts.NodeName, strings.Join(list, ", "), strings.Join(ifs, ","))
	}
}

// l2Writer is RunL2Status's memory of the API: the status of this node's
// object of each Service, as it last wrote or listed it.
type l2Writer struct {
	s      *Speaker
	listed bool
	wrote  map[string]v1alpha1.ServiceL2StatusStatus
	// check are Services whose objects are checked against the API at the
	// next round, other nodes' objects too.
	check map[string]bool
}

// write makes this node's ServiceL2Status objects match what it owns:
// at the first round against a list of them all, then for the Services
// changed (and those a failed round left).
func (w *l2Writer) write(ctx context.Context, mine map[netip.Addr]Ownership, changed map[string]bool) error {
	if w.check == nil {
		w.check = map[string]bool{}
	}
	for svc := range changed {
		w.check[svc] = true
	}
	if !w.listed {
		if err := w.list(ctx, wantStatus(w.s.opts.NodeName, mine, nil)); err != nil {
			return err
		}
	}
	want := wantStatus(w.s.opts.NodeName, mine, w.check)
	for svc := range w.check {
		st, announced := want[svc]
		if err := w.s.pruneStatus(ctx, svc, announced); err != nil {
			return err
		}
		delete(w.wrote, svc)
		if announced {
			if err := w.s.applyStatus(ctx, svc, st); err != nil {
				return err
			}
			w.wrote[svc] = st
		}
		delete(w.check, svc)
	}
	return nil
}

// list reads every ServiceL2Status once and marks for checking the
// Services where the objects differ from want: this node's missing,
// different or not owned by its Pod, and other nodes' of Services this
// node announces.
func (w *l2Writer) list(ctx context.Context, want map[string]v1alpha1.ServiceL2StatusStatus) error {
	var have v1alpha1.ServiceL2StatusList
	if err := w.s.opts.Reader.List(ctx, &have, client.InNamespace(w.s.opts.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	w.wrote = map[string]v1alpha1.ServiceL2StatusStatus{}
	for i := range have.Items {
		obj := &have.Items[i]
		svc := obj.Status.ServiceNamespace + "/" + obj.Status.ServiceName
		_, announced := want[svc]
		switch mine := obj.Status.Node == w.s.opts.NodeName; {
		case mine && !w.s.wouldOwn(obj):
			w.wrote[svc] = obj.Status
		case mine || announced: // to own or delete; another node's to delete
			w.check[svc] = true
		}
	}
	for svc, st := range want {
		if have, ok := w.wrote[svc]; !ok || !equalStatus(have, st) {
			w.check[svc] = true
		}
	}
	for svc := range w.wrote {
		if _, ok := want[svc]; !ok {
			w.check[svc] = true
		}
	}
	w.listed = true
	return nil
}

// wantStatus is the status of this node's object of each Service it owns
// addresses of, of the Services in only (nil: all). The addresses it
// announces, or when it announces none of the Service's, those withheld
// and why (without interfaces: it answers on none).
func wantStatus(node string, mine map[netip.Addr]Ownership, only map[string]bool) map[string]v1alpha1.ServiceL2StatusStatus {
	want := map[string]v1alpha1.ServiceL2StatusStatus{}
	held := map[string]v1alpha1.ServiceL2StatusStatus{}
	for _, o := range mine {
		if only != nil && !only[o.Service] {
			continue
		}
		into := want
		if o.Withheld != "" {
			into = held
		}
		st := into[o.Service]
		st.Node = node
		st.ServiceNamespace, st.ServiceName, _ = strings.Cut(o.Service, "/")
		st.Addresses = append(st.Addresses, o.Addr.String())
		if o.Withheld == "" {
			st.Interfaces = append(st.Interfaces, o.Ifaces...)
		}
		st.NotAnnounced = o.Withheld
		into[o.Service] = st
	}
	for svc, st := range held {
		if _, announced := want[svc]; !announced {
			want[svc] = st
		}
	}
	for svc, st := range want {
		want[svc] = normalize(st)
	}
	return want
}

// pruneStatus deletes the objects of Service svc this node should not
// have: its own when it no longer announces svc, other nodes' when it
// does (their speaker may be dead and unable to clean up).
func (s *Speaker) pruneStatus(ctx context.Context, svc string, announced bool) error {
	var have v1alpha1.ServiceL2StatusList
	if err := s.opts.Reader.List(ctx, &have, client.InNamespace(s.opts.Namespace),
		client.MatchingFields{statusServiceIndex: svc}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	for i := range have.Items {
		obj := &have.Items[i]
		if (obj.Status.Node == s.opts.NodeName) == announced {
			continue
		}
		if err := client.IgnoreNotFound(s.opts.Writer.Delete(ctx, obj.DeepCopy())); err != nil {
			return fmt.Errorf("delete status %s: %w", obj.Name, err)
		}
	}
	return nil
}

// statusServiceIndex indexes the cached ServiceL2Status objects by the
// Service they report ("namespace/name", from their labels).
const statusServiceIndex = "pier.dev/status-service"

func statusService(o client.Object) []string {
	l := o.GetLabels()
	if l[v1alpha1.LabelServiceName] == "" {
		return nil
	}
	return []string{l[v1alpha1.LabelServiceNamespace] + "/" + l[v1alpha1.LabelServiceName]}
}

func (s *Speaker) applyStatus(ctx context.Context, svc string, st v1alpha1.ServiceL2StatusStatus) error {
	obj := &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{
		Name: statusName(svc, s.opts.NodeName), Namespace: s.opts.Namespace,
		Labels: map[string]string{
			v1alpha1.LabelServiceName: st.ServiceName, v1alpha1.LabelServiceNamespace: st.ServiceNamespace,
			v1alpha1.LabelNode: s.opts.NodeName,
		},
	}}
	s.own(obj)
	err := s.opts.Reader.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		if err = s.opts.Writer.Create(ctx, obj); err != nil {
			return fmt.Errorf("create status for %s: %w", svc, err)
		}
	} else if err != nil {
		return err
	} else if s.own(obj) {
		// Written by this node's previous speaker Pod: take it over before
		// the garbage collector removes it with that Pod.
		if err := s.opts.Writer.Update(ctx, obj); err != nil {
			return fmt.Errorf("own status for %s: %w", svc, err)
		}
	}
	if equalStatus(obj.Status, st) {
		return nil
	}
	// A patch, not an update: the cache may not show this node's last
	// write yet, and only this node writes the object's status.
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Status = st
	if err := s.opts.Writer.Status().Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("status for %s: %w", svc, err)
	}
	return nil
}

func normalize(st v1alpha1.ServiceL2StatusStatus) v1alpha1.ServiceL2StatusStatus {
	slices.Sort(st.Addresses)
	slices.Sort(st.Interfaces)
	st.Interfaces = slices.Compact(st.Interfaces)
	return st
}

func equalStatus(a, b v1alpha1.ServiceL2StatusStatus) bool {
	return a.Node == b.Node && a.ServiceName == b.ServiceName && a.ServiceNamespace == b.ServiceNamespace &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Interfaces, b.Interfaces) && a.NotAnnounced == b.NotAnnounced
}

// statusName is readable when short and unique always: names are capped at
// 253 characters, so long ones end in a hash.
func statusName(svc, node string) string {
	name := strings.ReplaceAll(svc, "/", "-") + "-" + node
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(svc + "/" + node))
	return name[:50] + "-" + hex.EncodeToString(sum[:6])
}

// wouldOwn tells whether own would change obj.
func (s *Speaker) wouldOwn(obj *v1alpha1.ServiceL2Status) bool {
	o := s.opts.Owner
	return o != nil && !(len(obj.OwnerReferences) == 1 && obj.OwnerReferences[0].UID == o.UID)
}

// own makes obj's owner this speaker's Pod (Options.Owner) and reports
// whether that changed anything.
func (s *Speaker) own(obj *v1alpha1.ServiceL2Status) bool {
	if !s.wouldOwn(obj) {
		return false
	}
	obj.OwnerReferences = []metav1.OwnerReference{*s.opts.Owner}
	return true
}
