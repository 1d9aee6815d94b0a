package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pier-lb/pier/allocator"
	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// Reconcile brings one Service's addresses and status in line with the
// allocator.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := c.ready(ctx); err != nil {
		return reconcile.Result{}, err
	}
	key := allocator.ServiceKey{Namespace: req.Namespace, Name: req.Name}
	var svc corev1.Service
	if err := c.opts.Client.Get(ctx, req.NamespacedName, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			c.release(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !config.Serves(&svc, c.opts.OnlyOwnClass) {
		return reconcile.Result{}, c.stopServing(ctx, &svc)
	}
	return reconcile.Result{}, c.assign(ctx, &svc)
}

func (c *Controller) release(key allocator.ServiceKey) {
	if c.alloc.Release(key) {
		c.log.Info("released", "service", key)
		c.statsChanged()
		// A Service waiting for this address (or any, from a full pool)
		// gets it now, not at the next change of its own.
		select {
		case c.freed <- event.GenericEvent{Object: &corev1.Service{}}:
		default: // a signal is already pending
		}
	}
}

// stopServing releases a Service that is no longer Pier's (type or class
// changed) and clears the status Pier wrote: its addresses, and the
// condition of a failed assignment.
func (c *Controller) stopServing(ctx context.Context, svc *corev1.Service) error {
	held, ok := c.alloc.Lookup(keyOf(svc))
	if ok {
		c.release(keyOf(svc))
	}
	// Ingress not matching what was held is someone else's status now.
	clearIngress := ok && sameIngress(svc.Status.LoadBalancer.Ingress, ingressFor(held))
	failed := apimeta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAddressAssigned) != nil
	if !clearIngress && !failed {
		return nil
	}
	if err := c.opts.Fence(); err != nil {
		return fmt.Errorf("clear status of %s: %w", keyOf(svc), err)
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if clearIngress {
		svc.Status.LoadBalancer.Ingress = nil
	}
	apimeta.RemoveStatusCondition(&svc.Status.Conditions, v1alpha1.ConditionAddressAssigned)
	if err := c.opts.Client.Status().Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("clear status of %s: %w", keyOf(svc), err)
	}
	if clearIngress {
		c.opts.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, "IPReleased", "Release", "no longer a LoadBalancer served by Pier")
	}
	return nil
}

func (c *Controller) assign(ctx context.Context, svc *corev1.Service) error {
	start := c.opts.Clock.Now()
	nsLabels, err := c.namespaceLabels(ctx, svc.Namespace)
	if err != nil {
		return err
	}
	req, err := requestFor(svc, nsLabels)
	if err != nil {
		return c.fail(ctx, svc, "InvalidRequest", err)
	}
	if err := c.keepHeld(ctx, svc); err != nil {
		return err
	}
	as, err := c.alloc.Assign(req)
	if err != nil {
		return c.fail(ctx, svc, reasonOf(err), err)
	}
	changed, err := c.writeStatus(ctx, svc, as)
	if err != nil {
		return err
	}
	if changed {
		c.statsChanged()
		c.opts.Metrics.latency.Observe(c.opts.Clock.Since(start).Seconds())
		c.opts.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, "IPAllocated", "Assign",
			"assigned %s from pool %s", addrList(as), svc.Annotations[v1alpha1.AnnotationAllocatedFromPool])
	}
	return nil
}

func (c *Controller) namespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	var ns corev1.Namespace
	if err := c.opts.Client.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return ns.Labels, nil
}

// keepHeld makes the allocator record the addresses a Service holds in the
// API when they differ from what the allocator holds for it (a write by a
// replica that led before, or by hand), so that Assign keeps them rather
// than move the Service. The cache may lag behind this replica's own
// writes, so the Service is read again from the API server first.
func (c *Controller) keepHeld(ctx context.Context, svc *corev1.Service) error {
	if c.holdsStatus(svc) {
		return nil
	}
	var fresh corev1.Service
	if err := c.opts.Reader.Get(ctx, client.ObjectKeyFromObject(svc), &fresh); err != nil {
		return fmt.Errorf("read %s: %w", keyOf(svc), err)
	}
	claim, ok := claimOf(&fresh)
	if !ok || c.holdsStatus(&fresh) {
		return nil
	}
	for _, cf := range c.alloc.RestoreOne(claim) {
		c.opts.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, "AddressConflict", "Restore",
			"address %s is also held by the older Service %s: %v", cf.Addr, cf.Holder, cf.Err)
	}
	c.log.Info("kept the addresses the Service holds in the API", "service", keyOf(svc), "addrs", claim.Addrs)
	return nil
}

// holdsStatus tells whether the allocator holds for svc what its status
// shows, or its status shows nothing.
func (c *Controller) holdsStatus(svc *corev1.Service) bool {
	claim, ok := claimOf(svc)
	if !ok {
		return true
	}
	held, _ := c.alloc.Lookup(keyOf(svc))
	if len(held) != len(claim.Addrs) {
		return false
	}
	for i, a := range held {
		if a.Addr != claim.Addrs[i] {
			return false
		}
	}
	return true
}

// writeStatus writes the ingress addresses and the pool annotation when they
// differ from what the Service shows, and reports whether it wrote. Both go
// in one PATCH of the status subresource, which for Services also applies
// metadata; should an API server ever drop the annotation there, a second
// PATCH of the Service sets it. Patches carry the resourceVersion read: a
// Service changed since (by a replica that took over, say) is read again
// rather than overwritten. Nothing is written unless the Fence holds.
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, as []allocator.Assignment) (bool, error) {
	want, pool := ingressFor(as), poolAnnotation(svc, as)
	failed := apimeta.IsStatusConditionFalse(svc.Status.Conditions, v1alpha1.ConditionAddressAssigned)
	if !failed && sameIngress(svc.Status.LoadBalancer.Ingress, want) && svc.Annotations[v1alpha1.AnnotationAllocatedFromPool] == pool {
		return false, nil
	}
	if err := c.opts.Fence(); err != nil {
		return false, fmt.Errorf("write status of %s: %w", keyOf(svc), err)
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	svc.Status.LoadBalancer.Ingress = want
	if failed {
		c.setAssigned(svc, metav1.ConditionTrue, v1alpha1.ReasonAssigned, "assigned "+addrList(as))
	}
	setAnnotation(svc, v1alpha1.AnnotationAllocatedFromPool, pool)
	if err := c.opts.Client.Status().Patch(ctx, svc, patch); err != nil {
		return false, fmt.Errorf("write status of %s: %w", keyOf(svc), err)
	}
	if svc.Annotations[v1alpha1.AnnotationAllocatedFromPool] == pool {
		return true, nil
	}
	patch = client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	setAnnotation(svc, v1alpha1.AnnotationAllocatedFromPool, pool)
	if err := c.opts.Client.Patch(ctx, svc, patch); err != nil {
		return true, fmt.Errorf("annotate %s: %w", keyOf(svc), err)
	}
	return true, nil
}

// poolAnnotation is the pool annotation to write for as: the pools the
// addresses came from or, while the Service holds an orphan (an address the
// allocator finds in no pool), the annotation as it stands. It is the only
// record of the orphan's pool, which the speakers announce it as until the
// Service lets it go; a reconcile for any other reason must not erase it.
func poolAnnotation(svc *corev1.Service, as []allocator.Assignment) string {
	if slices.ContainsFunc(as, func(a allocator.Assignment) bool { return a.Pool == "" }) {
		return svc.Annotations[v1alpha1.AnnotationAllocatedFromPool]
	}
	return poolOf(as)
}

func setAnnotation(obj *corev1.Service, key, value string) {
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[key] = value
}

// fail reports a failed assignment: a warning event, and the Service's
// ConditionAddressAssigned set False with the reason, which a Gateway's
// status and `kubectl get -o yaml` read. The condition is written only
// when its reason or message changes, so a Service failing on every
// reconcile costs no write.
func (c *Controller) fail(ctx context.Context, svc *corev1.Service, reason string, err error) error {
	c.log.Warn("assignment failed", "service", keyOf(svc), "reason", reason, "err", err)
	c.opts.Metrics.failures.WithLabelValues(reason).Inc()
	// The reason is the event's reason: client-go folds events that differ
	// only in their note into one series, so a Service whose failure
	// changes must get a new reason to show the new note.
	c.opts.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, reason, "Assign", "allocation failed: %v", err)
	msg := "allocation failed: " + err.Error()
	if cur := apimeta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAddressAssigned); cur != nil &&
		cur.Status == metav1.ConditionFalse && cur.Reason == reason && cur.Message == msg {
		return nil
	}
	if err := c.opts.Fence(); err != nil {
		return fmt.Errorf("write condition of %s: %w", keyOf(svc), err)
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	c.setAssigned(svc, metav1.ConditionFalse, reason, msg)
	if err := c.opts.Client.Status().Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("write condition of %s: %w", keyOf(svc), err)
	}
	return nil
}

func (c *Controller) setAssigned(svc *corev1.Service, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&svc.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionAddressAssigned, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: svc.Generation, LastTransitionTime: metav1.NewTime(c.opts.Clock.Now()),
	})
}

// reasonOf maps an allocator error to a short, bounded reason.
func reasonOf(err error) string {
	reasons := []struct {
		err    error
		reason string
	}{
		{allocator.ErrPoolExhausted, "PoolExhausted"},
		{allocator.ErrNoEligiblePool, "NoEligiblePool"},
		{allocator.ErrFamilyUnavailable, "FamilyUnavailable"},
		{allocator.ErrUnknownPool, "UnknownPool"},
		{allocator.ErrAddressInUse, "AddressInUse"},
		{allocator.ErrSharingConflict, "SharingConflict"},
		{allocator.ErrAddressNotInPool, "AddressNotInPool"},
		{allocator.ErrNotInAnyPool, "NotInAnyPool"},
		{allocator.ErrInvalidRequest, "InvalidRequest"},
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "Other"
}

func sameIngress(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && (x.IPMode == nil) == (y.IPMode == nil) &&
			(x.IPMode == nil || *x.IPMode == *y.IPMode)
	})
}

func addrList(as []allocator.Assignment) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ","
		}
		s += a.Addr.String()
	}
	return s
}
