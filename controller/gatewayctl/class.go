package gatewayctl

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// SupportedFeatures are the conformance features Pier claims, sorted by
// name as the spec asks.
var SupportedFeatures = []gwv1.SupportedFeature{
	{Name: gwv1.FeatureName(features.SupportGateway)},
	{Name: gwv1.FeatureName(features.SupportReferenceGrant)},
	{Name: gwv1.FeatureName(features.SupportTCPRoute)},
	{Name: gwv1.FeatureName(features.SupportUDPRoute)},
}

// classAccepted judges a class of Pier's: it takes no parameters.
func classAccepted(class *gwv1.GatewayClass) (bool, string) {
	if p := class.Spec.ParametersRef; p != nil {
		return false, fmt.Sprintf("parametersRef %s/%s %s: Pier's GatewayClass takes no parameters", p.Group, p.Kind, p.Name)
	}
	return true, "accepted by " + string(ControllerName)
}

// ClassStatus is the status a class of Pier's should have.
func ClassStatus(class *gwv1.GatewayClass, now metav1.Time) gwv1.GatewayClassStatus {
	st := gwv1.GatewayClassStatus{Conditions: slices.Clone(class.Status.Conditions), SupportedFeatures: SupportedFeatures}
	ok, msg := classAccepted(class)
	c := metav1.Condition{Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.GatewayClassReasonAccepted), Message: msg, ObservedGeneration: class.Generation, LastTransitionTime: now}
	if !ok {
		c.Status, c.Reason = metav1.ConditionFalse, string(gwv1.GatewayClassReasonInvalidParameters)
	}
	apimeta.SetStatusCondition(&st.Conditions, c)
	return st
}

// ClassFinalizer keeps a GatewayClass of Pier's while Gateways use it, as
// the Gateway API asks of implementations: deleting the class waits until
// its last Gateway is gone.
const ClassFinalizer = gwv1.GatewayClassFinalizerGatewaysExist

// classReconciler writes the status of Pier's GatewayClasses and keeps
// ClassFinalizer on each while Gateways use it.
type classReconciler struct {
	client client.Client
	clock  clock.PassiveClock
}

func (r *classReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var class gwv1.GatewayClass
	if err := r.client.Get(ctx, req.NamespacedName, &class); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if class.Spec.ControllerName != ControllerName {
		return reconcile.Result{}, nil
	}
	if err := r.keepFinalizer(ctx, &class); err != nil {
		return reconcile.Result{}, err
	}
	if !class.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	st := ClassStatus(&class, metav1.NewTime(r.clock.Now()))
	if equality.Semantic.DeepEqual(class.Status, st) {
		return reconcile.Result{}, nil
	}
	class.Status = st
	if err := r.client.Status().Update(ctx, &class); err != nil {
		return reconcile.Result{}, fmt.Errorf("write status of GatewayClass %s: %w", class.Name, err)
	}
	return reconcile.Result{}, nil
}

// keepFinalizer adds ClassFinalizer while a Gateway names the class and
// removes it once none does.
func (r *classReconciler) keepFinalizer(ctx context.Context, class *gwv1.GatewayClass) error {
	var list gwv1.GatewayList
	if err := r.client.List(ctx, &list, client.MatchingFields{gatewayClassIndex: class.Name}); err != nil {
		return fmt.Errorf("list Gateways of class %s: %w", class.Name, err)
	}
	used := len(list.Items) > 0
	if used == controllerutil.ContainsFinalizer(class, ClassFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(class.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if used {
		controllerutil.AddFinalizer(class, ClassFinalizer)
	} else {
		controllerutil.RemoveFinalizer(class, ClassFinalizer)
	}
	if err := r.client.Patch(ctx, class, patch); err != nil {
		return fmt.Errorf("finalizer of GatewayClass %s: %w", class.Name, err)
	}
	return nil
}
