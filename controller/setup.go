package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// SetupWithManager registers the controller: each Service is reconciled by
// one worker at a time; pool and namespace changes, and releases that free
// addresses, requeue the Services still waiting for an address.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	err := builder.ControllerManagedBy(mgr).
		Named("pier-services").
		For(&corev1.Service{}).
		Watches(&v1alpha1.IPAddressPool{}, handler.EnqueueRequestsFromMapFunc(c.poolChanged)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(c.namespaceChanged)).
		WatchesRawSource(source.Channel(c.freed, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, _ client.Object) []reconcile.Request { return c.pending(ctx, "") }))).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: c.opts.Workers}).
		Complete(c)
	if err != nil {
		return err
	}
	return mgr.Add(poolStatusWriter{c})
}

func (c *Controller) poolChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	if obj.GetNamespace() != c.opts.Namespace {
		return nil
	}
	c.markPoolsDirty()
	return c.pending(ctx, "")
}

func (c *Controller) namespaceChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	return c.pending(ctx, obj.GetName())
}

// pending lists the served Services in namespace ns ("" for all) that hold
// no address yet.
func (c *Controller) pending(ctx context.Context, ns string) []reconcile.Request {
	var list corev1.ServiceList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		c.log.Warn("list services", "err", err)
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		svc := &list.Items[i]
		if config.Serves(svc, c.opts.OnlyOwnClass) && len(svc.Status.LoadBalancer.Ingress) == 0 {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(svc)})
		}
	}
	return reqs
}
