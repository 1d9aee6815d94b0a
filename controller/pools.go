package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// syncPools applies the current IPAddressPools to the allocator. An invalid
// set is refused (the last good one stays) and each pool at fault gets a
// warning event. Addresses left outside every pool stay where they are;
// their Services get a warning event.
func (c *Controller) syncPools(ctx context.Context) error {
	var list v1alpha1.IPAddressPoolList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(c.opts.Namespace)); err != nil {
		return fmt.Errorf("list pools: %w", err)
	}
	fp := fingerprint(list.Items)
	if fp == c.poolsRV {
		return nil
	}
	cfg, err := config.Parse(config.Objects{Pools: list.Items})
	if err != nil {
		c.reportInvalid(list.Items, err)
		c.poolsRV = fp // do not retry the same broken set on every reconcile
		return nil
	}
	orphans, err := c.alloc.SetPools(cfg.Pools)
	if err != nil {
		c.reportInvalid(list.Items, err)
		c.poolsRV = fp
		return nil
	}
	c.poolsRV = fp
	c.log.Info("pools applied", "pools", len(cfg.Pools), "orphans", len(orphans))
	c.opts.Metrics.setStats(c.alloc.Stats())
	return c.reportOrphans(ctx, orphans)
}

func fingerprint(pools []v1alpha1.IPAddressPool) string {
	parts := make([]string, len(pools))
	for i, p := range pools {
		// Generation moves with the spec only, not with the status Pier writes.
		parts[i] = fmt.Sprintf("%s/%s@%d", p.Name, p.UID, p.Generation)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (c *Controller) reportInvalid(pools []v1alpha1.IPAddressPool, err error) {
	c.log.Error("pool configuration refused, keeping the last good one", "err", err)
	c.opts.Metrics.failures.WithLabelValues("InvalidConfig").Inc()
	for i := range pools {
		p := &pools[i]
		errs := config.ForObject(err, "IPAddressPool", p.Namespace, p.Name)
		if len(errs) == 0 {
			continue
		}
		msgs := make([]string, len(errs))
		for j, e := range errs {
			msgs[j] = e.Error()
		}
		c.opts.Recorder.Eventf(p, nil, corev1.EventTypeWarning, "InvalidPool", "Validate", "%s", strings.Join(msgs, "; "))
	}
}

func (c *Controller) reportOrphans(ctx context.Context, orphans []allocator.Orphan) error {
	var errs []error
	for _, o := range orphans {
		var svc corev1.Service
		key := client.ObjectKey{Namespace: o.Service.Namespace, Name: o.Service.Name}
		if err := c.opts.Client.Get(ctx, key, &svc); err != nil {
			errs = append(errs, client.IgnoreNotFound(err))
			continue
		}
		c.opts.Recorder.Eventf(&svc, nil, corev1.EventTypeWarning, "AddressOrphaned", "SyncPools",
			"address %s is no longer in any IPAddressPool; the Service keeps it until it is deleted or asks for another", o.Addr)
	}
	return errors.Join(errs...)
}
