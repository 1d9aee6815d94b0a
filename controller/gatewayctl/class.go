package gatewayctl

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/pier-lb/pier/config"
)

// SupportedFeatures are the conformance features Pier claims, sorted by
// name as the spec asks.
var SupportedFeatures = []gwv1.SupportedFeature{
	{Name: gwv1.FeatureName(features.SupportGateway)},
	{Name: gwv1.FeatureName(features.SupportReferenceGrant)},
	{Name: gwv1.FeatureName(features.SupportTCPRoute)},
	{Name: gwv1.FeatureName(features.SupportUDPRoute)},
}

// ParamsRef checks a class's parametersRef: Pier's classes take a
// ConfigMap in Pier's namespace (config.ParseGatewayParameters reads it).
// It returns the ConfigMap to read (nil: none) or why the reference is
// refused.
func ParamsRef(class *gwv1.GatewayClass, namespace string) (*types.NamespacedName, string) {
	p := class.Spec.ParametersRef
	if p == nil {
		return nil, ""
	}
	switch {
	case p.Group != "" || p.Kind != "ConfigMap":
		return nil, fmt.Sprintf("parametersRef %s/%s %s: Pier's GatewayClass takes a ConfigMap", p.Group, p.Kind, p.Name)
	case p.Namespace == nil || string(*p.Namespace) != namespace:
		return nil, fmt.Sprintf("parametersRef ConfigMap %s: must be in Pier's namespace %s", p.Name, namespace)
	}
	return &types.NamespacedName{Namespace: namespace, Name: p.Name}, ""
}

// ClassParams judges a class of Pier's from its parameters (cm: the
// ConfigMap its parametersRef names, nil when there is none or it does
// not exist): the parameters, or why the class is not accepted.
func ClassParams(class *gwv1.GatewayClass, cm *corev1.ConfigMap, namespace string) (config.GatewayParameters, string) {
	key, problem := ParamsRef(class, namespace)
	switch {
	case problem != "":
		return config.GatewayParameters{}, problem
	case key != nil && cm == nil:
		return config.GatewayParameters{}, fmt.Sprintf("parametersRef ConfigMap %s not found", key)
	}
	params, errs := config.ParseGatewayParameters(cm)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return params, strings.Join(msgs, "; ")
	}
	return params, ""
}

// ClassStatus is the status a class of Pier's should have, problem being
// why it is not accepted ("" when it is).
func ClassStatus(class *gwv1.GatewayClass, problem string, now metav1.Time) gwv1.GatewayClassStatus {
	st := gwv1.GatewayClassStatus{Conditions: slices.Clone(class.Status.Conditions), SupportedFeatures: SupportedFeatures}
	c := metav1.Condition{Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.GatewayClassReasonAccepted), Message: "accepted by " + string(ControllerName),
		ObservedGeneration: class.Generation, LastTransitionTime: now}
	if problem != "" {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(gwv1.GatewayClassReasonInvalidParameters), problem
	}
	apimeta.SetStatusCondition(&st.Conditions, c)
	return st
}

// classParams reads the class's parameters: the parameters, or why the
// class is not accepted.
func (c *Controller) classParams(ctx context.Context, class *gwv1.GatewayClass) (config.GatewayParameters, string, error) {
	key, problem := ParamsRef(class, c.opts.Namespace)
	var cm *corev1.ConfigMap
	if key != nil {
		var got corev1.ConfigMap
		err := c.opts.Client.Get(ctx, *key, &got)
		switch {
		case err == nil:
			cm = &got
		case client.IgnoreNotFound(err) != nil:
			return config.GatewayParameters{}, "", fmt.Errorf("get parameters of GatewayClass %s: %w", class.Name, err)
		}
	}
	if problem != "" {
		return config.GatewayParameters{}, problem, nil
	}
	params, problem := ClassParams(class, cm, c.opts.Namespace)
	return params, problem, nil
}

// ClassFinalizer keeps a GatewayClass of Pier's while Gateways use it, as
// the Gateway API asks of implementations: deleting the class waits until
// its last Gateway is gone.
const ClassFinalizer = gwv1.GatewayClassFinalizerGatewaysExist

// classReconciler writes the status of Pier's GatewayClasses and keeps
// ClassFinalizer on each while Gateways use it.
type classReconciler struct {
	ctl *Controller
}

func (r *classReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	cl := r.ctl.opts.Client
	var class gwv1.GatewayClass
	if err := cl.Get(ctx, req.NamespacedName, &class); err != nil {
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
	_, problem, err := r.ctl.classParams(ctx, &class)
	if err != nil {
		return reconcile.Result{}, err
	}
	st := ClassStatus(&class, problem, metav1.NewTime(r.ctl.opts.Clock.Now()))
	if equality.Semantic.DeepEqual(class.Status, st) {
		return reconcile.Result{}, nil
	}
	class.Status = st
	if err := cl.Status().Update(ctx, &class); err != nil {
		return reconcile.Result{}, fmt.Errorf("write status of GatewayClass %s: %w", class.Name, err)
	}
	return reconcile.Result{}, nil
}

// keepFinalizer adds ClassFinalizer while a Gateway names the class and
// removes it once none does.
func (r *classReconciler) keepFinalizer(ctx context.Context, class *gwv1.GatewayClass) error {
	var list gwv1.GatewayList
	cl := r.ctl.opts.Client
	if err := cl.List(ctx, &list, client.MatchingFields{gatewayClassIndex: class.Name}); err != nil {
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
	if err := cl.Patch(ctx, class, patch); err != nil {
		return fmt.Errorf("finalizer of GatewayClass %s: %w", class.Name, err)
	}
	return nil
}
