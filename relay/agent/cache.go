package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/apicache"
)

// serviceIndex indexes the cached EndpointSlices by the Service they
// belong to (their kubernetes.io/service-name label), so that the agent
// lists those of its Relays' backends only.
const serviceIndex = "serviceName"

// newCache is the agent's view of the API: every Relay, the EndpointSlices
// that belong to a Service (indexed by it, serviceIndex), and this node's
// Node. The cache keeps of a slice and of the Node only what Desired reads
// (slimSlice, slimNode) and of a Relay all but its managed fields. It
// needs no discovery, so it can be made while the API server is
// unreachable.
func newCache(cfg *rest.Config, node string) (cache.Cache, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	owned, err := labels.NewRequirement(discoveryv1.LabelServiceName, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme, Mapper: restMapper(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Node{}:               {Field: fields.OneTermEqualSelector("metadata.name", node), Transform: slim(slimNode)},
			&discoveryv1.EndpointSlice{}: {Label: labels.NewSelector().Add(*owned), Transform: slim(slimSlice)},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("relay agent cache: %w", err)
	}
	// Before Start: the informer is made, not started, so this needs no
	// API server.
	if err := c.IndexField(context.Background(), &discoveryv1.EndpointSlice{}, serviceIndex, sliceService); err != nil {
		return nil, fmt.Errorf("relay agent cache: index slices: %w", err)
	}
	return c, nil
}

// sliceService is the index value of an EndpointSlice: its Service's name.
func sliceService(o client.Object) []string {
	if s, ok := o.GetLabels()[discoveryv1.LabelServiceName]; ok {
		return []string{s}
	}
	return nil
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

// slimSlice keeps what Backends reads: the slice's Service and weight, address type
// and ports, and of each endpoint its addresses, readiness, hostname and
// target's name. It trims in place, allocating nothing.
func slimSlice(es *discoveryv1.EndpointSlice) {
	es.ManagedFields, es.OwnerReferences, es.Annotations = nil, nil, nil
	maps.DeleteFunc(es.Labels, func(k, _ string) bool {
		return k != discoveryv1.LabelServiceName && k != v1alpha1.LabelEndpointWeight
	})
	for i := range es.Endpoints {
		ep := &es.Endpoints[i]
		ep.NodeName, ep.Zone, ep.Hints, ep.DeprecatedTopology = nil, nil, nil, nil
		ep.Conditions.Serving = nil
		if ep.TargetRef != nil {
			*ep.TargetRef = corev1.ObjectReference{Name: ep.TargetRef.Name}
		}
	}
}

// slimNode keeps the Node's name and labels (the Relays' node selectors),
// so that a status update of the Node changes nothing cached.
func slimNode(n *corev1.Node) {
	n.ObjectMeta = metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, ResourceVersion: n.ResourceVersion, UID: n.UID}
	n.Spec, n.Status = corev1.NodeSpec{}, corev1.NodeStatus{}
}

// restMapper knows every kind the agent reads.
func restMapper() meta.RESTMapper {
	return apicache.Mapper(
		apicache.Kind{GroupVersion: corev1.SchemeGroupVersion, Kind: "Node", Plural: "nodes"},
		apicache.Kind{GroupVersion: discoveryv1.SchemeGroupVersion, Kind: "EndpointSlice", Plural: "endpointslices", Namespaced: true},
		apicache.Kind{GroupVersion: v1alpha1.GroupVersion, Kind: "Relay", Plural: "relays", Namespaced: true},
		apicache.Kind{GroupVersion: v1alpha1.GroupVersion, Kind: "ConfigurationStatus", Plural: "configurationstatuses", Namespaced: true},
	)
}

// watch starts the cache's informers, retrying while the API server is
// unreachable (and saying when Pier's CRDs are missing), then marks the
// view synced and from then on calls changed on every change of what the
// agent reads: any Relay, this Node, and the EndpointSlices backend
// accepts (those of the Services the Relays name; the others, most of a
// cluster's, are cached but change nothing the agent runs).
func watch(ctx context.Context, c cache.Cache, crds func() error, changed func(), backend func(*discoveryv1.EndpointSlice) bool, synced *atomic.Bool, m *metrics, log *slog.Logger) error {
	kinds := []client.Object{&v1alpha1.Relay{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}}
	if !apicache.Watch(ctx, c, kinds, func() {}, log, "API unreachable, only saved relays until it answers", crds) {
		return nil
	}
	every := func(any) bool { return true }
	slices := func(obj any) bool {
		es, ok := obj.(*discoveryv1.EndpointSlice)
		return !ok || backend(es) // a tombstone: may have been one
	}
	var regs []toolscache.InformerSynced
	for _, o := range kinds {
		relevant := every
		if _, ok := o.(*discoveryv1.EndpointSlice); ok {
			relevant = slices
		}
		inf, err := c.GetInformer(ctx, o, cache.BlockUntilSynced(false))
		var reg toolscache.ResourceEventHandlerRegistration
		if err == nil {
			reg, err = inf.AddEventHandler(handler(relevant, changed))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay agent: watch %T: %w", o, err)
		}
		regs = append(regs, reg.HasSynced)
	}
	// The handlers first get every cached object as added: the first read
	// comes after them.
	if !toolscache.WaitForCacheSync(ctx.Done(), regs...) {
		return nil
	}
	synced.Store(true)
	m.apiSynced.Set(1)
	changed()
	log.Info("API view synced")
	return nil
}

// handler calls changed on every event of an object relevant says the
// agent reads, but for updates that change nothing cached.
func handler(relevant func(any) bool, changed func()) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if relevant(obj) {
				changed()
			}
		},
		UpdateFunc: func(old, obj any) {
			if (relevant(old) || relevant(obj)) && updated(old, obj) {
				changed()
			}
		},
		DeleteFunc: func(obj any) {
			if relevant(obj) {
				changed()
			}
		},
	}
}

// updated tells whether an update changed the object as cached (after
// the transforms), its resource version aside: a periodic resync or a
// Node's status update (which the cache drops) is no change.
func updated(old, obj any) bool {
	o, ok1 := old.(client.Object)
	n, ok2 := obj.(client.Object)
	if !ok1 || !ok2 {
		return true
	}
	if o.GetResourceVersion() == n.GetResourceVersion() {
		return false
	}
	o = o.DeepCopyObject().(client.Object)
	o.SetResourceVersion(n.GetResourceVersion())
	return !equality.Semantic.DeepEqual(o, n)
}
