package controller

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
)

// statusInterval is how often pool usage is written back, at most.
const statusInterval = time.Second

func (c *Controller) statsChanged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statsDirty = true
}

// poolStatusWriter applies pool edits even when no Service is waiting, and
// writes pool usage into IPAddressPool status at most once per interval.
// It runs only on the leader.
type poolStatusWriter struct{ c *Controller }

func (w poolStatusWriter) Start(ctx context.Context) error {
	t := w.c.opts.Clock.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		if err := w.c.ready(ctx); err != nil {
			w.c.log.Warn("pool sync failed", "err", err)
			continue
		}
		if err := w.c.writePoolStatus(ctx); err != nil {
			w.c.log.Warn("pool status not written", "err", err)
		}
	}
}

func (w poolStatusWriter) NeedLeaderElection() bool { return true }

func (c *Controller) writePoolStatus(ctx context.Context) error {
	c.mu.Lock()
	dirty := c.statsDirty
	c.statsDirty = false
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	stats := c.alloc.Stats()
	c.opts.Metrics.setStats(stats)
	c.opts.Metrics.setOrphans(len(c.alloc.Orphans()))
	var list v1alpha1.IPAddressPoolList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(c.opts.Namespace)); err != nil {
		return err
	}
	for i := range list.Items {
		p := &list.Items[i]
		want := poolUsage(p.Name, stats)
		if want == usageOf(p.Status) {
			continue
		}
		patch := client.MergeFrom(p.DeepCopy())
		p.Status.AssignedIPv4, p.Status.AssignedIPv6 = want.AssignedIPv4, want.AssignedIPv6
		p.Status.AvailableIPv4, p.Status.AvailableIPv6 = want.AvailableIPv4, want.AvailableIPv6
		if err := c.opts.Client.Status().Patch(ctx, p, patch); err != nil {
			c.statsChanged() // try again next round
			return fmt.Errorf("pool %s status: %w", p.Name, err)
		}
	}
	return nil
}

// usage is the counting part of an IPAddressPool status.
type usage struct{ AssignedIPv4, AssignedIPv6, AvailableIPv4, AvailableIPv6 string }

func usageOf(s v1alpha1.IPAddressPoolStatus) usage {
	return usage{s.AssignedIPv4, s.AssignedIPv6, s.AvailableIPv4, s.AvailableIPv6}
}

func poolUsage(pool string, stats []allocator.PoolStats) usage {
	u := usage{"0", "0", "0", "0"}
	for _, s := range stats {
		if s.Pool != pool {
			continue
		}
		used, avail := fmt.Sprint(s.InUse), s.Available.String()
		if s.Family == allocator.IPv6 {
			u.AssignedIPv6, u.AvailableIPv6 = used, avail
		} else {
			u.AssignedIPv4, u.AvailableIPv4 = used, avail
		}
	}
	return u
}
