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

// syncPools applies the valid IPAddressPools to the allocator. A pool at
// fault (invalid, or overlapping another) is left out, gets a warning event
// and is counted, and its Valid condition says why; the others apply. Addresses left outside every pool stay
// where they are (and stay announced) until their Services let them go;
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
	cfg, perr := config.Parse(config.Objects{Pools: list.Items})
	c.reportInvalid(list.Items, perr)
	orphans, err := c.alloc.SetPools(cfg.Pools)
	if err != nil { // Parse keeps only pools the allocator accepts
		c.log.Error("pool configuration refused, keeping the last good one", "err", err)
		c.opts.Metrics.failures.WithLabelValues("InvalidConfig").Inc()
		c.poolsRV = fp // do not retry the same broken set on every reconcile
		return nil
	}
	c.poolsRV = fp
	c.poolConds = validConditions(list.Items, perr)
	c.statsDirty = true // the pools' status shows the conditions
	c.log.Info("pools applied", "pools", len(cfg.Pools), "left out", len(list.Items)-len(cfg.Pools), "orphans", len(orphans))
	c.opts.Metrics.setStats(c.alloc.Stats())
	c.opts.Metrics.setOrphans(len(c.alloc.Orphans()))
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

// reportInvalid logs, counts and records an event on each pool Parse left
// out.
func (c *Controller) reportInvalid(pools []v1alpha1.IPAddressPool, err error) {
	left := map[string]bool{}
	for _, e := range config.Errors(err) {
		left[e.Name] = e.Kind == config.KindIPAddressPool || left[e.Name]
	}
	invalid := 0
	for _, out := range left {
		if out {
			invalid++
		}
	}
	c.opts.Metrics.invalid.WithLabelValues(config.KindIPAddressPool).Set(float64(invalid))
	for i := range pools {
		p := &pools[i]
		errs := config.ForObject(err, config.KindIPAddressPool, p.Namespace, p.Name)
		if len(errs) == 0 {
			continue
		}
		msgs := make([]string, len(errs))
		for j, e := range errs {
			msgs[j] = e.Error()
			c.log.Error("pool left out, the others apply", "pool", p.Name, "field", e.Field, "err", e.Message)
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
