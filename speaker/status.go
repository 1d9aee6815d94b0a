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
	// next round; stale those of them where another node's object claims
	// an address this node announces (found by the first round's list).
	check, stale map[string]bool
}

// write makes this node's ServiceL2Status objects match what it owns:
// at the first round against a list of them all, then for the Services
// changed (and those a failed round left). Another node's object of a
// Service is deleted when it claims an address this node announces: when
// this node takes an address over, it reads the Service's objects from the
// API server, and deletes those (their node may be dead and unable to
// clean up). Other nodes' objects of the Service's other addresses stay: a
// dual-stack Service may have two owners, one per address.
func (w *l2Writer) write(ctx context.Context, mine map[netip.Addr]Ownership, changed map[string]bool) error {
	if w.check == nil {
		w.check, w.stale = map[string]bool{}, map[string]bool{}
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
		prev, had := w.wrote[svc]
		if announced && (w.stale[svc] || !had || !subset(st.Addresses, prev.Addresses)) {
			if err := w.s.pruneOthers(ctx, svc, st.Addresses); err != nil {
				return err
			}
		}
		delete(w.stale, svc)
		delete(w.wrote, svc)
		if announced {
			if err := w.s.applyStatus(ctx, svc, st); err != nil {
				return err
			}
			w.wrote[svc] = st
		} else if err := w.s.deleteStatus(ctx, svc); err != nil {
			return err
		}
		delete(w.check, svc)
	}
	return nil
}

// list reads every ServiceL2Status once, from the API server a page at a
// time (the cache holds this node's only), and marks for checking the
// Services where the objects differ from want: this node's missing,
// different or not owned by its Pod, and other nodes' claiming addresses
// this node announces.
func (w *l2Writer) list(ctx context.Context, want map[string]v1alpha1.ServiceL2StatusStatus) error {
	w.wrote = map[string]v1alpha1.ServiceL2StatusStatus{}
	opts := []client.ListOption{client.InNamespace(w.s.opts.Namespace), client.Limit(listPage)}
	for next := ""; ; {
		var have v1alpha1.ServiceL2StatusList
		if err := w.s.opts.Writer.List(ctx, &have, append(opts, client.Continue(next))...); err != nil {
			return fmt.Errorf("list statuses: %w", err)
		}
		for i := range have.Items {
			w.listed1(&have.Items[i], want)
		}
		if next = have.Continue; next == "" {
			break
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

// listPage is how many objects list reads per request.
const listPage = 500

// listed1 takes in one listed object.
func (w *l2Writer) listed1(obj *v1alpha1.ServiceL2Status, want map[string]v1alpha1.ServiceL2StatusStatus) {
	svc := obj.Status.ServiceNamespace + "/" + obj.Status.ServiceName
	st, announced := want[svc]
	switch {
	case !w.s.mineStatus(obj):
		if announced && overlaps(obj.Status.Addresses, st.Addresses) {
			w.check[svc], w.stale[svc] = true, true
		}
	case w.s.wouldOwn(obj) || obj.Labels[v1alpha1.LabelNode] != w.s.opts.NodeName:
		w.check[svc] = true // to own or label
	default:
		w.wrote[svc] = obj.Status
	}
}

// mineStatus tells whether obj is this node's.
func (s *Speaker) mineStatus(obj *v1alpha1.ServiceL2Status) bool {
	return obj.Status.Node == s.opts.NodeName || obj.Labels[v1alpha1.LabelNode] == s.opts.NodeName
}

// subset tells whether every address of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
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

// pruneOthers deletes the other nodes' objects of Service svc that claim
// one of addrs, which this node announces: it lists the Service's objects
// from the API server (by their Service labels).
func (s *Speaker) pruneOthers(ctx context.Context, svc string, addrs []string) error {
	ns, name, _ := strings.Cut(svc, "/")
	var have v1alpha1.ServiceL2StatusList
	if err := s.opts.Writer.List(ctx, &have, client.InNamespace(s.opts.Namespace),
		client.MatchingLabels{v1alpha1.LabelServiceNamespace: ns, v1alpha1.LabelServiceName: name}); err != nil {
		return fmt.Errorf("list statuses of %s: %w", svc, err)
	}
	for i := range have.Items {
		obj := &have.Items[i]
		if s.mineStatus(obj) || !overlaps(obj.Status.Addresses, addrs) {
			continue
		}
		if err := client.IgnoreNotFound(s.opts.Writer.Delete(ctx, obj)); err != nil {
			return fmt.Errorf("delete status %s: %w", obj.Name, err)
		}
	}
	return nil
}

// deleteStatus deletes this node's object of Service svc, if the cache
// holds it.
func (s *Speaker) deleteStatus(ctx context.Context, svc string) error {
	var obj v1alpha1.ServiceL2Status
	key := client.ObjectKey{Namespace: s.opts.Namespace, Name: statusName(svc, s.opts.NodeName)}
	if err := s.opts.Reader.Get(ctx, key, &obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if err := client.IgnoreNotFound(s.opts.Writer.Delete(ctx, &obj)); err != nil {
		return fmt.Errorf("delete status %s: %w", obj.Name, err)
	}
	return nil
}

// statusService is the Service a ServiceL2Status reports
// ("namespace/name", from its labels).
func statusService(o client.Object) []string {
	l := o.GetLabels()
	if l[v1alpha1.LabelServiceName] == "" {
		return nil
	}
	return []string{l[v1alpha1.LabelServiceNamespace] + "/" + l[v1alpha1.LabelServiceName]}
}

func (s *Speaker) applyStatus(ctx context.Context, svc string, st v1alpha1.ServiceL2StatusStatus) error {
	lbls := map[string]string{
		v1alpha1.LabelServiceName: st.ServiceName, v1alpha1.LabelServiceNamespace: st.ServiceNamespace,
		v1alpha1.LabelNode: s.opts.NodeName,
	}
	obj := &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{
		Name: statusName(svc, s.opts.NodeName), Namespace: s.opts.Namespace, Labels: lbls,
	}}
	s.own(obj)
	err := s.opts.Reader.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		err = s.opts.Writer.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			// Not cached, as the cache holds the objects labelled with
			// this node's name only: its label was removed. Read it; the
			// update below labels it again.
			err = s.opts.Writer.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		}
		if err != nil {
			return fmt.Errorf("create status for %s: %w", svc, err)
		}
	} else if err != nil {
		return err
	}
	// Written by this node's previous speaker Pod: take it over before the
	// garbage collector removes it with that Pod.
	update := s.own(obj)
	if obj.Labels[v1alpha1.LabelNode] != s.opts.NodeName {
		obj.Labels = maps.Clone(obj.Labels)
		if obj.Labels == nil {
			obj.Labels = map[string]string{}
		}
		maps.Copy(obj.Labels, lbls)
		update = true
	}
	if update {
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
