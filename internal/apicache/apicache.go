// Package apicache holds what the node agents (speaker, relay) share to read
// the API through a controller-runtime cache that can be made and started
// while the API server is unreachable: a static REST mapping (no discovery)
// and an informer registration that retries until the API server answers.
package apicache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kind is one kind an agent reads, with its resource name.
type Kind struct {
	GroupVersion schema.GroupVersion
	Kind         string
	Plural       string
	Namespaced   bool
}

// Mapper maps exactly the given kinds (and their lists), with no discovery.
func Mapper(kinds ...Kind) meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, k := range kinds {
		scope := meta.RESTScopeRoot
		if k.Namespaced {
			scope = meta.RESTScopeNamespace
		}
		res := k.GroupVersion.WithResource(k.Plural)
		single := k.GroupVersion.WithResource(strings.ToLower(k.Kind))
		m.AddSpecific(k.GroupVersion.WithKind(k.Kind), res, single, scope)
		m.AddSpecific(k.GroupVersion.WithKind(k.Kind+"List"), res, single, scope)
	}
	return m
}

// Watch registers trigger on the informer of every object kind, retrying
// each second while the API server is unreachable (logging waiting), then
// waits for the cache to sync, saying so when crds (nil: not asked) finds
// Pier's CRDs missing. It returns true once synced, false when ctx ended
// first.
func Watch(ctx context.Context, c cache.Cache, objs []client.Object, trigger func(), log *slog.Logger, waiting string, crds func() error) bool {
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { trigger() },
		UpdateFunc: func(any, any) { trigger() },
		DeleteFunc: func(any) { trigger() },
	}
	for _, o := range objs {
		for {
			inf, err := c.GetInformer(ctx, o, cache.BlockUntilSynced(false))
			if err == nil {
				_, err = inf.AddEventHandler(handler)
			}
			if err == nil {
				break
			}
			log.Warn(waiting, "kind", fmt.Sprintf("%T", o), "err", err)
			select {
			case <-ctx.Done():
				return false
			case <-time.After(time.Second):
			}
		}
	}
	return waitSynced(ctx, c, crds, log)
}

// CRDCheckInterval is how often Watch asks whether Pier's CRDs are served
// while its cache has not synced.
var CRDCheckInterval = 5 * time.Second

// waitSynced waits for c to sync. Without the CRDs of its kinds a cache
// never syncs and client-go only logs failed lists, so while it waits it
// asks crds and logs, once per change, which are missing.
func waitSynced(ctx context.Context, c cache.Cache, crds func() error, log *slog.Logger) bool {
	if crds == nil {
		return c.WaitForCacheSync(ctx)
	}
	done := make(chan bool, 1)
	go func() { done <- c.WaitForCacheSync(ctx) }()
	tick := time.NewTicker(CRDCheckInterval)
	defer tick.Stop()
	var said string
	for {
		select {
		case ok := <-done:
			return ok
		case <-tick.C:
			err := crds()
			switch {
			case errors.Is(err, ErrCRDsMissing) && err.Error() != said:
				said = err.Error()
				log.Error("waiting for Pier's CRDs", "err", err)
			case err == nil && said != "":
				said = ""
				log.Info("Pier's CRDs are installed")
			}
		}
	}
}
