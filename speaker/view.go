package speaker

import (
	"context"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/speaker/bgp"
)

// sliceServiceIndex indexes the cached EndpointSlices by the Service they
// belong to ("namespace/name"): a change of one Service reads its own
// slices, not the cluster's.
const sliceServiceIndex = "pier.dev/service"

// sliceService is the key sliceServiceIndex files an EndpointSlice under;
// none for a slice without the Service name label.
func sliceService(o client.Object) []string {
	if svc := o.GetLabels()[discoveryv1.LabelServiceName]; svc != "" {
		return []string{o.GetNamespace() + "/" + svc}
	}
	return nil
}

// apiView is the API as the speaker read it last, kept so that a change
// of one Service or of its EndpointSlices is planned by reading that
// Service alone (refreshServices). A change of anything else (the
// configuration, Nodes, Secrets) reads everything again (refreshTargets).
type apiView struct {
	in      Inputs       // Config, Nodes and OnlyOwnClass: no Service, no slice
	node    *corev1.Node // this node; nil when it has no Node object
	peers   []string     // the names of this node's BGP peers
	targets map[string][]Target
	sources map[string][]BGPSource // this node's, by Service
	// users are the Services with a path on each prefix: a prefix's
	// path is merged again from them alone.
	users map[netip.Prefix]map[string]bool
}

func newAPIView(in Inputs, node *corev1.Node, peers []string) *apiView {
	return &apiView{
		in:   Inputs{Config: in.Config, Nodes: in.Nodes, OnlyOwnClass: in.OnlyOwnClass, nodeSets: newNodeSets()},
		node: node, peers: peers,
		targets: map[string][]Target{}, sources: map[string][]BGPSource{}, users: map[netip.Prefix]map[string]bool{},
	}
}

// plan computes the targets and this node's BGP sources of one Service
// (nil svc: deleted) from its readiness and what it announced last.
func (v *apiView) plan(svc *corev1.Service, ready readiness, lastT []Target, lastS []BGPSource) ([]Target, []BGPSource) {
	if svc == nil {
		return nil, nil
	}
	v.in.nodeSets.prune(v.targets)
	in := v.in
	in.Last, in.LastBGP = lastT, lastS
	t := serviceTargets(in, svc, ready)
	var src []BGPSource
	if v.node != nil && eligible(v.node) {
		src = serviceSources(in, svc, v.node, v.peers, ready)
	}
	return t, src
}

// set records the targets and sources of the Service key.
func (v *apiView) set(key string, t []Target, src []BGPSource) {
	for _, old := range v.sources[key] {
		for _, p := range old.Paths {
			delete(v.users[p.Prefix], key)
			if len(v.users[p.Prefix]) == 0 {
				delete(v.users, p.Prefix)
			}
		}
	}
	setOrDelete(v.targets, key, t)
	setOrDelete(v.sources, key, src)
	for _, s := range src {
		if s.Withheld != "" {
			continue
		}
		for _, p := range s.Paths {
			if v.users[p.Prefix] == nil {
				v.users[p.Prefix] = map[string]bool{}
			}
			v.users[p.Prefix][key] = true
		}
	}
}

func setOrDelete[T any](m map[string][]T, key string, v []T) {
	if len(v) == 0 {
		delete(m, key)
		return
	}
	m[key] = v
}

// mergedPath is the path of prefix p merged from the sources of its
// users, in the order mergeSources merges them; false when none has one.
func (v *apiView) mergedPath(p netip.Prefix) (bgp.Path, bool) {
	var srcs []BGPSource
	for key := range v.users[p] {
		srcs = append(srcs, v.sources[key]...)
	}
	slices.SortFunc(srcs, compareSources)
	byPrefix := map[netip.Prefix]*bgp.Path{}
	for _, s := range srcs {
		if s.Withheld != "" {
			continue
		}
		for _, path := range s.Paths {
			if path.Prefix == p {
				mergePath(byPrefix, path)
			}
		}
	}
	if m := byPrefix[p]; m != nil {
		return *m, true
	}
	return bgp.Path{}, false
}

// byService groups records (targets or sources) by their Service.
func byService[T announced](list []T) map[string][]T {
	out := map[string][]T{}
	for _, r := range list {
		_, svc := r.key()
		out[svc] = append(out[svc], r)
	}
	return out
}

// ServiceChanged says that a Service or one of its EndpointSlices changed
// (key "namespace/name") and asks for a pass, which reads that Service
// again; everything else stays as read last.
func (s *Speaker) ServiceChanged(key string) {
	s.dirtyMu.Lock()
	if s.dirty == nil {
		s.dirty = map[string]bool{}
	}
	s.dirty[key] = true
	s.dirtyMu.Unlock()
	s.Trigger()
}

// takeDirty returns the Services changed since the last call.
func (s *Speaker) takeDirty() map[string]bool {
	s.dirtyMu.Lock()
	defer s.dirtyMu.Unlock()
	d := s.dirty
	s.dirty = nil
	return d
}

// refreshServices plans again the Services named, from their Service
// objects and EndpointSlices alone, and splices what changed into the
// targets and the BGP plan. The flat lists the announcers take are copied,
// not recomputed.
func (s *Speaker) refreshServices(ctx context.Context, keys map[string]bool) error {
	v := s.view
	type result struct {
		key string
		t   []Target
		src []BGPSource
	}
	var results []result
	for key := range keys {
		t, src, err := s.readService(ctx, key)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(t, v.targets[key]) || !reflect.DeepEqual(src, v.sources[key]) {
			results = append(results, result{key, t, src})
		}
	}
	if len(results) == 0 {
		return nil
	}
	var delT, addT []Target
	var delS, addS []BGPSource
	prefixes := map[netip.Prefix]bool{}
	for _, r := range results {
		delT, addT = append(delT, v.targets[r.key]...), append(addT, r.t...)
		delS, addS = append(delS, v.sources[r.key]...), append(addS, r.src...)
		for _, src := range [][]BGPSource{v.sources[r.key], r.src} {
			for _, x := range src {
				for _, p := range x.Paths {
					prefixes[p.Prefix] = true
				}
			}
		}
		v.set(r.key, r.t, r.src)
	}
	s.targets = spliced(s.targets, delT, addT, compareTargets)
	s.targetsChanged(delT, addT)
	if len(delS)+len(addS) > 0 {
		s.setBGP(s.splicedBGP(delS, addS, prefixes))
	}
	s.gen++
	disk := s.bgp.forDisk()
	s.unsaved = &state{Targets: s.targets, Peers: s.peers, BGP: &disk}
	return nil
}

// readService reads one Service and its EndpointSlices from the cache
// and plans it; a Service that is gone has no targets.
func (s *Speaker) readService(ctx context.Context, key string) ([]Target, []BGPSource, error) {
	ns, name, _ := strings.Cut(key, "/")
	var svc corev1.Service
	err := s.opts.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var es discoveryv1.EndpointSliceList
	if err := s.opts.Reader.List(ctx, &es, client.InNamespace(ns), client.MatchingFields{sliceServiceIndex: key},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	t, src := s.view.plan(&svc, readyEndpoints(es.Items), s.view.targets[key], s.view.sources[key])
	return t, src, nil
}

// splicedBGP is the BGP plan with the sources del replaced by add; the
// paths of the prefixes named are merged again from their users.
func (s *Speaker) splicedBGP(del, add []BGPSource, prefixes map[netip.Prefix]bool) BGPDesired {
	d := s.bgp
	d.Sources = spliced(d.Sources, del, add, compareSources)
	var delP, addP []bgp.Path
	for p := range prefixes {
		if i, ok := slices.BinarySearchFunc(d.Paths, p, func(x bgp.Path, p netip.Prefix) int {
			return comparePaths(x, bgp.Path{Prefix: p})
		}); ok {
			delP = append(delP, d.Paths[i])
		}
		if m, ok := s.view.mergedPath(p); ok {
			addP = append(addP, m)
		}
	}
	d.Paths = spliced(d.Paths, delP, addP, comparePaths)
	if d.Paths == nil {
		d.Paths = []bgp.Path{}
	}
	carried := func(a netip.Addr) bool { // by a source announced
		i, _ := slices.BinarySearchFunc(d.Sources, a, func(x BGPSource, a netip.Addr) int { return x.Addr.Compare(a) })
		for ; i < len(d.Sources) && d.Sources[i].Addr == a; i++ {
			if d.Sources[i].Withheld == "" {
				return true
			}
		}
		return false
	}
	var delA, addA []netip.Addr
	for _, x := range del {
		if !carried(x.Addr) && !slices.Contains(delA, x.Addr) {
			delA = append(delA, x.Addr)
		}
	}
	for _, x := range add {
		if x.Withheld != "" {
			continue
		}
		if _, had := slices.BinarySearchFunc(d.Addrs, x.Addr, netip.Addr.Compare); !had && !slices.Contains(addA, x.Addr) {
			addA = append(addA, x.Addr)
		}
	}
	d.Addrs = spliced(d.Addrs, delA, addA, netip.Addr.Compare)
	d.Waiting, d.Secrets = maps.Clone(d.Waiting), maps.Clone(d.Secrets)
	return d
}

// spliced is list (sorted by cmp, a key order) without the items of del
// and with those of add, sorted; list itself is not changed.
func spliced[T any](list, del, add []T, cmp func(a, b T) int) []T {
	del = slices.SortedFunc(slices.Values(del), cmp)
	add = slices.SortedFunc(slices.Values(add), cmp)
	out := make([]T, 0, len(list)+len(add))
	i, j := 0, 0
	for _, x := range list {
		for j < len(add) && cmp(add[j], x) < 0 {
			out = append(out, add[j])
			j++
		}
		for i < len(del) && cmp(del[i], x) < 0 {
			i++
		}
		if i < len(del) && cmp(del[i], x) == 0 {
			i++
			continue
		}
		out = append(out, x)
	}
	out = append(out, add[j:]...)
	if len(out) == 0 {
		return nil
	}
	return out
}
