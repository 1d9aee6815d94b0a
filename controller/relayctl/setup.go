package relayctl

import (
	"context"
	"slices"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// relayBackendIndex indexes Relays by spec.backend.serviceName, so an
// EndpointSlice finds the Relays of its Service.
const relayBackendIndex = "spec.backend.serviceName"

// relayWorkers reconcile different Relays in parallel; Relays are few.
const relayWorkers = 2

// SetupWithManager registers the Relay controller. It runs only on the
// leader, like the Service controller. It watches Relays, the Services it
// owns, EndpointSlices (by the Relays' backend Service) and the relays'
// Leases in Pier's namespace.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Relay{}, relayBackendIndex,
		func(o client.Object) []string { return []string{o.(*v1alpha1.Relay).Spec.Backend.ServiceName} })
	if err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		Named("pier-relays").
		For(&v1alpha1.Relay{}).
		Owns(&corev1.Service{}).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(c.sliceChanged)).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(c.leaseChanged)).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: relayWorkers}).
		Complete(c)
}

// sliceChanged maps an EndpointSlice to the Relays whose backend is its
// Service, or one Pier writes to its Relay.
func (c *Controller) sliceChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	if l[discoveryv1.LabelManagedBy] == SliceManager && l[v1alpha1.LabelRelayName] != "" {
		// One of the slices Pier writes: its Relay puts it right.
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: l[v1alpha1.LabelRelayName]}}}
	}
	svc := l[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil
	}
	var relays v1alpha1.RelayList
	if err := c.opts.Client.List(ctx, &relays, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{relayBackendIndex: svc}); err != nil {
		c.log.Warn("list relays by backend", "service", obj.GetNamespace()+"/"+svc, "err", err)
		return nil
	}
	reqs := make([]reconcile.Request, len(relays.Items))
	for i := range relays.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&relays.Items[i])}
	}
	return reqs
}

// leaseChanged maps a relay's Lease to the Relay it serves.
func (c *Controller) leaseChanged(_ context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	ns, name := l[v1alpha1.LabelRelayNamespace], l[v1alpha1.LabelRelayName]
	if !slices.Contains(c.leaseNamespaces(), obj.GetNamespace()) || ns == "" || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}}
}
