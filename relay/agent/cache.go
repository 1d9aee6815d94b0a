package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// newCache is the agent's view of the API: every Relay, the EndpointSlices
// that belong to a Service, and this node's Node. It needs no discovery, so
// it can be made while the API server is unreachable.
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
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, Mapper: restMapper(), ByObject: map[client.Object]cache.ByObject{
		&corev1.Node{}:               {Field: fields.OneTermEqualSelector("metadata.name", node)},
		&discoveryv1.EndpointSlice{}: {Label: labels.NewSelector().Add(*owned)},
	}})
	if err != nil {
		return nil, fmt.Errorf("relay agent cache: %w", err)
	}
	return c, nil
}

// restMapper knows every kind the agent reads.
func restMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	add := func(gv schema.GroupVersion, kind, plural string, scope meta.RESTScope) {
		res := gv.WithResource(plural)
		single := gv.WithResource(strings.ToLower(kind))
		m.AddSpecific(gv.WithKind(kind), res, single, scope)
		m.AddSpecific(gv.WithKind(kind+"List"), res, single, scope)
	}
	add(corev1.SchemeGroupVersion, "Node", "nodes", meta.RESTScopeRoot)
	add(discoveryv1.SchemeGroupVersion, "EndpointSlice", "endpointslices", meta.RESTScopeNamespace)
	add(v1alpha1.GroupVersion, "Relay", "relays", meta.RESTScopeNamespace)
	return m
}

// watch registers trigger on every informer the agent reads, retrying while
// the API server is unreachable, then marks the view synced.
func watch(ctx context.Context, c cache.Cache, trigger func(), synced *atomic.Bool, m *metrics, log *slog.Logger) error {
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
		DeleteFunc: func(any) { trigger() },
	}
	for _, k := range []client.Object{&v1alpha1.Relay{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}} {
		for {
			inf, err := c.GetInformer(ctx, k, cache.BlockUntilSynced(false))
			if err == nil {
				_, err = inf.AddEventHandler(handler)
			}
			if err == nil {
				break
			}
			log.Warn("API unreachable, no relays until it answers", "kind", fmt.Sprintf("%T", k), "err", err)
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
	m.apiSynced.Set(1)
	trigger()
	log.Info("API view synced")
	return nil
}
