package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/config"
)

// restore feeds every address found in Service status to the allocator, so
// that nothing already in use is handed out again or moved. It reads from
// the API server, not the cache, which may not yet show the last writes of
// the replica that led before. Conflicts (two
// Services on one address without a valid sharing key) are resolved in
// favour of the older Service; the newer one is told by an event and gets a
// new address when it is reconciled.
func (c *Controller) restore(ctx context.Context) error {
	var list corev1.ServiceList
	if err := c.opts.Reader.List(ctx, &list); err != nil {
		return fmt.Errorf("restore: list services: %w", err)
	}
	claims := make([]allocator.Claim, 0, len(list.Items))
	byKey := make(map[allocator.ServiceKey]*corev1.Service, len(list.Items))
	for i := range list.Items {
		svc := &list.Items[i]
		if !config.Serves(svc, c.opts.OnlyOwnClass) {
			continue
		}
		if claim, ok := claimOf(svc); ok {
			claims = append(claims, claim)
			byKey[claim.Service] = svc
		}
	}
	conflicts := c.alloc.Restore(claims)
	for _, cf := range conflicts {
		if svc := byKey[cf.Service]; svc != nil {
			c.opts.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, "AddressConflict", "Restore",
				"address %s is also held by the older Service %s: %v", cf.Addr, cf.Holder, cf.Err)
		}
	}
	c.log.Info("restored assignments", "services", len(claims), "conflicts", len(conflicts))
	c.opts.Metrics.setStats(c.alloc.Stats())
	c.opts.Metrics.setOrphans(len(c.alloc.Orphans()))
	return nil
}
