package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/internal/apicache"
)

// newAPICache is the speaker's API cache. Every kind is held without its
// managed fields, and Services, EndpointSlices and Nodes, which grow with
// the cluster, keep only what the speaker reads (see slimService,
// slimSlice, slimNode): at 20,000 Services the cache is most of the
// speaker's memory.
//
// EndpointSlices are indexed by their Service (sliceServiceIndex). Of the
// ServiceL2Status objects it holds node's only (by their pier.dev/node
// label, which every speaker version wrote): the status writer reads
// other nodes' from the API server when it takes a Service over.
func newAPICache(cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper, ns, passwordNS, node string) (cache.Cache, error) {
	inNS := func(ns string) map[string]cache.Config { return map[string]cache.Config{ns: {}} }
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme, Mapper: mapper,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}:            {Transform: slim(slimService)},
			&discoveryv1.EndpointSlice{}: {Transform: slim(slimSlice)},
			&corev1.Node{}:               {Transform: slim(slimNode)},
			&v1alpha1.IPAddressPool{}:    {Namespaces: inNS(ns)},
			&v1alpha1.L2Advertisement{}:  {Namespaces: inNS(ns)},
			&v1alpha1.ServiceL2Status{}: {Namespaces: inNS(ns),
				Label: labels.SelectorFromSet(labels.Set{v1alpha1.LabelNode: node})},
			&v1alpha1.BGPPeer{}:          {Namespaces: inNS(ns)},
			&v1alpha1.BGPAdvertisement{}: {Namespaces: inNS(ns)},
			&corev1.Secret{}:             {Namespaces: inNS(passwordNS), Transform: slim(slimSecret)},
		},
	})
	if err != nil {
		return nil, err
	}
	if err := indexInNamespace(c, &discoveryv1.EndpointSlice{}, sliceServiceIndex, sliceService); err != nil {
		return nil, fmt.Errorf("index endpointslices by service: %w", err)
	}
	return c, nil
}

// indexInNamespace indexes obj's kind by field for lists within one
// namespace (client.InNamespace with client.MatchingFields), as
// cache.IndexField does but without its second entry per object for lists
// across namespaces, which the speaker never makes: each entry is a set
// of its own, and at 20,000 EndpointSlices and ServiceL2Status objects
// the second entries cost some 10 MiB.
//
// The index is stored under the name and with the values
// controller-runtime's cache reader looks up: "field:" + field, and
// "namespace/" + the value.
func indexInNamespace(c cache.Cache, obj client.Object, field string, extract client.IndexerFunc) error {
	inf, err := c.GetInformer(context.Background(), obj, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	return inf.AddIndexers(toolscache.Indexers{"field:" + field: func(raw any) ([]string, error) {
		o, ok := raw.(client.Object)
		if !ok {
			return nil, fmt.Errorf("index %s: %T is not an object", field, raw)
		}
		var vals []string
		for _, v := range extract(o) {
			vals = append(vals, o.GetNamespace()+"/"+v)
		}
		return vals, nil
	}})
}

// slim is a cache transform from a function that trims one kind in
// place; other objects (tombstones) pass unchanged.
func slim[T any](trim func(*T)) toolscache.TransformFunc {
	return func(in any) (any, error) {
		if o, ok := in.(*T); ok {
			trim(o)
		}
		return in, nil
	}
}

// slimService keeps what Targets, BGPPlan and the events read: name,
// labels, Pier's annotations, type, class, traffic policy and the
// addresses in the status. Of a Service Pier never serves (not a
// LoadBalancer, or of another class) it keeps only the name, type and
// class, which say so: most Services of a cluster are of that kind. The
// namespace and enumerations are shared (intern).
func slimService(s *corev1.Service) {
	s.ManagedFields, s.OwnerReferences, s.Finalizers = nil, nil, nil
	s.Annotations = pierAnnotations(s.Annotations)
	s.Namespace = intern(s.Namespace)
	s.Spec = corev1.ServiceSpec{
		Type: corev1.ServiceType(intern(string(s.Spec.Type))), LoadBalancerClass: internPtr(s.Spec.LoadBalancerClass),
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicy(intern(string(s.Spec.ExternalTrafficPolicy))),
	}
	s.Status = corev1.ServiceStatus{LoadBalancer: s.Status.LoadBalancer}
	if !config.Serves(s, false) { // nor with OnlyOwnClass
		s.Labels, s.Annotations, s.Status = nil, nil, corev1.ServiceStatus{}
		s.Spec.ExternalTrafficPolicy = ""
	}
}

func pierAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if strings.HasPrefix(k, "pier.dev/") {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	if pool, ok := out[v1alpha1.AnnotationAllocatedFromPool]; ok && len(out) == 1 {
		return poolAnnotations(pool)
	}
	return out
}

// poolAnnotation holds one map per pool annotation value for the Services
// that carry no other Pier annotation (nearly all): the maps are shared by
// the cached Services, which nobody changes, and their count is that of the
// pools (and pairs of pools) ever named.
var poolAnnotation sync.Map // string -> map[string]string

// poolAnnotations is the shared annotation map naming pool.
func poolAnnotations(pool string) map[string]string {
	if m, ok := poolAnnotation.Load(pool); ok {
		return m.(map[string]string)
	}
	m, _ := poolAnnotation.LoadOrStore(pool, map[string]string{v1alpha1.AnnotationAllocatedFromPool: pool})
	return m.(map[string]string)
}

// slimSlice keeps the Service an EndpointSlice belongs to and, of its
// endpoints, the node and whether ready and terminating (readyEndpoints),
// once per distinct node and conditions: the many Pods of a Deployment on
// one node are one entry. Node names, condition values and the namespace
// are shared between the cached slices, which nobody changes.
func slimSlice(es *discoveryv1.EndpointSlice) {
	svc, ok := es.Labels[discoveryv1.LabelServiceName]
	es.ManagedFields, es.OwnerReferences, es.Annotations, es.Labels, es.Ports = nil, nil, nil, nil, nil
	es.UID, es.GenerateName = "", ""
	es.Namespace = intern(es.Namespace)
	es.AddressType = discoveryv1.AddressType(intern(string(es.AddressType)))
	if ok {
		es.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	var eps []discoveryv1.Endpoint
	for _, ep := range es.Endpoints {
		e := discoveryv1.Endpoint{NodeName: internPtr(ep.NodeName), Conditions: discoveryv1.EndpointConditions{
			Ready: boolPtr(ep.Conditions.Ready), Terminating: boolPtr(ep.Conditions.Terminating)}}
		if !slices.ContainsFunc(eps, func(k discoveryv1.Endpoint) bool {
			return k.NodeName == e.NodeName && k.Conditions == e.Conditions // shared pointers
		}) {
			eps = append(eps, e)
		}
	}
	es.Endpoints = eps
}

// interned holds one copy of each string intern was given: namespaces,
// node names and enumerations, whose count is that of the cluster's
// namespaces and nodes, not of its objects.
var interned sync.Map // string -> string

func intern(s string) string {
	if v, ok := interned.Load(s); ok {
		return v.(string)
	}
	v, _ := interned.LoadOrStore(s, s)
	return v.(string)
}

// internedPtr holds one pointer per string internPtr was given.
var internedPtr sync.Map // string -> *string

func internPtr(p *string) *string {
	if p == nil {
		return nil
	}
	if v, ok := internedPtr.Load(*p); ok {
		return v.(*string)
	}
	s := intern(*p)
	v, _ := internedPtr.LoadOrStore(s, &s)
	return v.(*string)
}

// yes and no are what boolPtr points to.
var yes, no = true, false

// boolPtr is p's value at a shared address (nil stays nil).
func boolPtr(p *bool) *bool {
	switch {
	case p == nil:
		return nil
	case *p:
		return &yes
	}
	return &no
}

// slimNode keeps a Node's labels, addresses and the type and status of its
// conditions (eligible): not the heartbeat times, so that a heartbeat
// changes nothing the speaker reads.
func slimNode(n *corev1.Node) {
	n.ManagedFields, n.OwnerReferences, n.Annotations = nil, nil, nil
	n.Spec = corev1.NodeSpec{}
	conds := make([]corev1.NodeCondition, len(n.Status.Conditions))
	for i, c := range n.Status.Conditions {
		conds[i] = corev1.NodeCondition{Type: c.Type, Status: c.Status}
	}
	n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses, Conditions: conds}
}

// slimSecret drops the annotations, where kubectl apply keeps a second
// copy of the data.
func slimSecret(s *corev1.Secret) {
	s.ManagedFields, s.Annotations = nil, nil
}

// viewKinds are the kinds other than Services and EndpointSlices that
// refreshTargets reads: a change of one of them changes the whole API
// view. (ServiceL2Status, also cached, is only written.)
var viewKinds = []client.Object{&corev1.Node{},
	&v1alpha1.IPAddressPool{}, &v1alpha1.L2Advertisement{},
	&v1alpha1.BGPPeer{}, &v1alpha1.BGPAdvertisement{}, &corev1.Secret{}}

// watchAPI starts the cache's informers, waiting while the API server is
// unreachable, then marks the view synced and from then on tells the
// speaker of every change of what it reads: of a Service or an
// EndpointSlice, which Service changed (ServiceChanged); of anything else,
// that everything may have (APIChanged). Updates that change nothing kept
// (a Node's heartbeat, a Pod's address in an EndpointSlice) are no change.
func (s *Speaker) watchAPI(ctx context.Context, c cache.Cache, synced *atomic.Bool, log *slog.Logger, crds func() error) error {
	if !apicache.Watch(ctx, c, watched, func() {}, log, "API unreachable, announcing from saved state", crds) {
		return nil
	}
	all := func(any) { s.APIChanged() }
	perService := func(obj any) {
		for _, key := range serviceKeys(obj) {
			s.ServiceChanged(key)
		}
	}
	handlers := map[client.Object]func(any){&corev1.Service{}: perService, &discoveryv1.EndpointSlice{}: perService}
	for _, o := range viewKinds {
		handlers[o] = all
	}
	for o, changed := range handlers {
		inf, err := c.GetInformer(ctx, o, cache.BlockUntilSynced(false))
		if err == nil {
			_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				AddFunc: changed,
				UpdateFunc: func(old, obj any) {
					if readChanged(old, obj) {
						changed(old)
						changed(obj)
					}
				},
				DeleteFunc: changed,
			})
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch %T: %w", o, err)
		}
	}
	if err := s.watchStatus(ctx, c); err != nil {
		return err
	}
	synced.Store(true)
	s.APIChanged()
	log.Info("API view synced")
	return nil
}

// watchStatus tells the status writer of this node's ServiceL2Status
// objects deleted by others. Other nodes' objects are neither cached nor
// watched: a node writes its own, and removes another node's only when it
// takes an address over (l2Writer.write).
func (s *Speaker) watchStatus(ctx context.Context, c cache.Cache) error {
	deleted := func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		o, ok := obj.(*v1alpha1.ServiceL2Status)
		if !ok || o.Labels[v1alpha1.LabelNode] != s.opts.NodeName {
			return
		}
		for _, svc := range statusService(o) {
			s.report.statusChanged(svc)
		}
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.ServiceL2Status{}, cache.BlockUntilSynced(false))
	if err == nil {
		_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: deleted})
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch %T: %w", &v1alpha1.ServiceL2Status{}, err)
	}
	return nil
}

// serviceKeys names the Service ("namespace/name") a Service or
// EndpointSlice event concerns: a deleted object may come as a tombstone.
func serviceKeys(obj any) []string {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *corev1.Service:
		return []string{o.Namespace + "/" + o.Name}
	case *discoveryv1.EndpointSlice:
		return sliceService(o)
	}
	return nil
}

// readChanged tells whether an update changed the object as cached (after
// the transforms), its resource version and generation aside.
func readChanged(old, obj any) bool {
	o, ok1 := old.(client.Object)
	n, ok2 := obj.(client.Object)
	if !ok1 || !ok2 {
		return true
	}
	if o.GetResourceVersion() == n.GetResourceVersion() {
		return false // a resync: the same object
	}
	o = o.DeepCopyObject().(client.Object)
	o.SetResourceVersion(n.GetResourceVersion())
	o.SetGeneration(n.GetGeneration())
	return !equality.Semantic.DeepEqual(o, n)
}
