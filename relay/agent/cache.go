package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/apicache"
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
	return apicache.Mapper(
		apicache.Kind{GroupVersion: corev1.SchemeGroupVersion, Kind: "Node", Plural: "nodes"},
		apicache.Kind{GroupVersion: discoveryv1.SchemeGroupVersion, Kind: "EndpointSlice", Plural: "endpointslices", Namespaced: true},
		apicache.Kind{GroupVersion: v1alpha1.GroupVersion, Kind: "Relay", Plural: "relays", Namespaced: true},
	)
}

// watch registers trigger on every informer the agent reads, retrying while
// the API server is unreachable (and saying when Pier's CRDs are missing),
// then marks the view synced.
func watch(ctx context.Context, c cache.Cache, crds func() error, trigger func(), synced *atomic.Bool, m *metrics, log *slog.Logger) error {
	kinds := []client.Object{&v1alpha1.Relay{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}}
	if !apicache.Watch(ctx, c, kinds, trigger, log, "API unreachable, only saved relays until it answers", crds) {
		return nil
	}
	synced.Store(true)
	m.apiSynced.Set(1)
	trigger()
	log.Info("API view synced")
	return nil
}
