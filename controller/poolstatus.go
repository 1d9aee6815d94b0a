package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// writes pool usage and the Valid condition into IPAddressPool status at
// most once per interval, and only what changed.
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
		switch err := w.c.writePoolStatus(ctx); {
		case apierrors.IsConflict(err): // read from a cache behind its write; next round
			w.c.log.Debug("pool status not written", "err", err)
		case err != nil:
			w.c.log.Warn("pool status not written", "err", err)
		}
	}
}

func (w poolStatusWriter) NeedLeaderElection() bool { return true }

// writePoolStatus writes each pool's usage and Valid condition where they
// differ from its status, in name order. Patches carry the
// resourceVersion read, so a write based on a stale cache is refused and
// tried again next round; nothing is written unless the Fence holds.
func (c *Controller) writePoolStatus(ctx context.Context) error {
	c.mu.Lock()
	dirty := c.statsDirty
	c.statsDirty = false
	conds := c.poolConds
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	stats := c.alloc.Stats()
	c.opts.Metrics.setStats(stats)
	c.opts.Metrics.setOrphans(len(c.alloc.Orphans()))
	var list v1alpha1.IPAddressPoolList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(c.opts.Namespace)); err != nil {
		c.statsChanged()
		return err
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.IPAddressPool) int { return cmp.Compare(a.Name, b.Name) })
	var errs []error
	for i := range list.Items {
		p := &list.Items[i]
		if err := c.writeOnePoolStatus(ctx, p, poolUsage(p.Name, stats), conds); err != nil {
			errs = append(errs, fmt.Errorf("pool %s status: %w", p.Name, err))
		}
	}
	if len(errs) > 0 {
		c.statsChanged() // try again next round
	}
	return errors.Join(errs...)
}

// writeOnePoolStatus patches p's status to show want and its condition in
// conds (if conds holds one for this very object), when either differs.
func (c *Controller) writeOnePoolStatus(ctx context.Context, p *v1alpha1.IPAddressPool, want usage, conds map[string]poolCond) error {
	next := p.Status.DeepCopy()
	next.AssignedIPv4, next.AssignedIPv6 = want.AssignedIPv4, want.AssignedIPv6
	next.AvailableIPv4, next.AvailableIPv6 = want.AvailableIPv4, want.AvailableIPv6
	condChanged := false
	if pc, ok := conds[p.Name]; ok && pc.uid == p.UID {
		cond := pc.cond
		cond.LastTransitionTime = metav1.NewTime(c.opts.Clock.Now())
		condChanged = apimeta.SetStatusCondition(&next.Conditions, cond)
	}
	if !condChanged && want == usageOf(p.Status) {
		return nil
	}
	if err := c.opts.Fence(); err != nil {
		return err
	}
	patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
	p.Status = *next
	return c.opts.Client.Status().Patch(ctx, p, patch)
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
