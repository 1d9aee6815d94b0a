package gatewayctl

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// Field indexes of the cache.
const (
	// routeParentIndex: the Gateways ("namespace/name") a route names as
	// parents, or carries a status entry of Pier's for.
	routeParentIndex = "pier.dev/gateway-parent"
	// routeBackendIndex: the Services ("namespace/name") a route names as
	// backends.
	routeBackendIndex = "pier.dev/gateway-backend"
	// gatewayClassIndex: a Gateway's spec.gatewayClassName.
	gatewayClassIndex = "spec.gatewayClassName"
)

const gatewayWorkers = 2

// SetupWithManager registers the GatewayClass and Gateway controllers.
// Both run on the leader only.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	if err := c.addIndexes(mgr); err != nil {
		return err
	}
	err := builder.ControllerManagedBy(mgr).
		Named("pier-gatewayclasses").
		For(&gwv1.GatewayClass{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.(*gwv1.GatewayClass).Spec.ControllerName == ControllerName
		}))).
		Watches(&gwv1.Gateway{}, handler.EnqueueRequestsFromMapFunc(gatewaysClass)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(c.paramsChanged)).
		Complete(&classReconciler{ctl: c})
	if err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		Named("pier-gateways").
		For(&gwv1.Gateway{}).
		Watches(&gwv1.GatewayClass{}, handler.EnqueueRequestsFromMapFunc(c.classChanged)).
		Watches(&gwv1.TCPRoute{}, handler.EnqueueRequestsFromMapFunc(c.routeChanged)).
		Watches(&gwv1.UDPRoute{}, handler.EnqueueRequestsFromMapFunc(c.routeChanged)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(c.serviceChanged)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(c.sliceChanged)).
		Watches(&gwv1.ReferenceGrant{}, handler.EnqueueRequestsFromMapFunc(c.grantChanged)).
		Watches(&v1alpha1.Relay{}, handler.EnqueueRequestsFromMapFunc(c.relayChanged)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(c.paramsGatewaysChanged)).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: gatewayWorkers}).
		Complete(c)
}

func (c *Controller) addIndexes(mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	ctx := context.Background()
	if err := idx.IndexField(ctx, &gwv1.Gateway{}, gatewayClassIndex, func(o client.Object) []string {
		return []string{string(o.(*gwv1.Gateway).Spec.GatewayClassName)}
	}); err != nil {
		return err
	}
	for _, obj := range []client.Object{&gwv1.TCPRoute{}, &gwv1.UDPRoute{}} {
		if err := idx.IndexField(ctx, obj, routeParentIndex, func(o client.Object) []string { return parentKeys(routeOf(o)) }); err != nil {
			return err
		}
		if err := idx.IndexField(ctx, obj, routeBackendIndex, func(o client.Object) []string { return backendKeys(routeOf(o)) }); err != nil {
			return err
		}
	}
	return nil
}

func routeOf(o client.Object) Route {
	if r, ok := o.(*gwv1.TCPRoute); ok {
		return TCPRoute(r)
	}
	return UDPRoute(o.(*gwv1.UDPRoute))
}

// parentKeys are the Gateways the route names, and those Pier wrote a
// status entry for.
func parentKeys(r Route) []string {
	seen := map[string]bool{}
	var out []string
	add := func(ref gwv1.ParentReference) {
		if ref.Group != nil && *ref.Group != gwv1.GroupName || ref.Kind != nil && *ref.Kind != "Gateway" {
			return
		}
		ns := r.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		if k := ns + "/" + string(ref.Name); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, ref := range r.ParentRefs {
		add(ref)
	}
	for _, p := range r.Status.Parents {
		if p.ControllerName == ControllerName {
			add(p.ParentRef)
		}
	}
	return out
}

func backendKeys(r Route) []string {
	var out []string
	for _, ref := range r.BackendRefs {
		if isService(ref.BackendObjectReference) {
			out = append(out, BackendKey(ref.BackendObjectReference, r.Namespace).String())
		}
	}
	return out
}

func requests(keys []string) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(keys))
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}})
	}
	return out
}

// gatewaysClass is the class a Gateway names: its finalizer follows the
// Gateways that use it.
func gatewaysClass(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: string(obj.(*gwv1.Gateway).Spec.GatewayClassName)}}}
}

func (c *Controller) classChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	var list gwv1.GatewayList
	if err := c.opts.Client.List(ctx, &list, client.MatchingFields{gatewayClassIndex: obj.GetName()}); err != nil {
		c.log.Warn("list gateways by class", "class", obj.GetName(), "err", err)
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return out
}

func (c *Controller) routeChanged(_ context.Context, obj client.Object) []reconcile.Request {
	return requests(parentKeys(routeOf(obj)))
}

// serviceChanged maps an owned Service to its Gateway and a backend
// Service to the Gateways of the routes naming it.
func (c *Controller) serviceChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	if ref := ownerGateway(obj); ref != nil {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}}}
	}
	reqs := c.gatewaysOfBackend(ctx, obj.GetNamespace()+"/"+obj.GetName())
	if gw, ok := strings.CutSuffix(obj.GetName(), serviceSuffix); ok {
		// Someone else's Service holding a Gateway's Service name: the
		// Gateway takes the name once it goes.
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: gw}})
	}
	return reqs
}

func ownerGateway(obj client.Object) *metav1.OwnerReference {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || !ownedByGateway(obj, ref.Name) {
		return nil
	}
	return ref
}

// sliceChanged maps a slice Pier wrote to its Gateway (to undo edits) and
// a backend's slice to the Gateways routing to it.
func (c *Controller) sliceChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	if ref := ownerGateway(obj); ref != nil {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}}}
	}
	svc := obj.GetLabels()[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil
	}
	return c.gatewaysOfBackend(ctx, obj.GetNamespace()+"/"+svc)
}

func (c *Controller) gatewaysOfBackend(ctx context.Context, key string) []reconcile.Request {
	seen := map[string]bool{}
	var keys []string
	collect := func(routes []Route) {
		for _, r := range routes {
			for _, k := range parentKeys(r) {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	var tcp gwv1.TCPRouteList
	if err := c.opts.Client.List(ctx, &tcp, client.MatchingFields{routeBackendIndex: key}); err != nil {
		c.log.Warn("list TCPRoutes by backend", "service", key, "err", err)
	}
	var udp gwv1.UDPRouteList
	if err := c.opts.Client.List(ctx, &udp, client.MatchingFields{routeBackendIndex: key}); err != nil {
		c.log.Warn("list UDPRoutes by backend", "service", key, "err", err)
	}
	var routes []Route
	for i := range tcp.Items {
		routes = append(routes, TCPRoute(&tcp.Items[i]))
	}
	for i := range udp.Items {
		routes = append(routes, UDPRoute(&udp.Items[i]))
	}
	collect(routes)
	return requests(keys)
}

// relayChanged maps a Relay Pier owns for a Gateway to the Gateway (its
// addresses and ready relays are the Gateway's status), and a Relay
// holding a Gateway's Relay name to that Gateway.
func (c *Controller) relayChanged(_ context.Context, obj client.Object) []reconcile.Request {
	if ref := ownerGateway(obj); ref != nil {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}}}
	}
	if gw, ok := strings.CutSuffix(obj.GetName(), serviceSuffix); ok {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: gw}}}
	}
	return nil
}

// paramsChanged maps a ConfigMap to Pier's classes whose parametersRef
// names it.
func (c *Controller) paramsChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, class := range c.classesOf(ctx, obj) {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: class}})
	}
	return out
}

// paramsGatewaysChanged maps a ConfigMap to the Gateways of the classes
// whose parametersRef names it.
func (c *Controller) paramsGatewaysChanged(ctx context.Context, obj client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, class := range c.classesOf(ctx, obj) {
		out = append(out, c.classChanged(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: class}})...)
	}
	return out
}

func (c *Controller) classesOf(ctx context.Context, obj client.Object) []string {
	if obj.GetNamespace() != c.opts.Namespace {
		return nil
	}
	var list gwv1.GatewayClassList
	if err := c.opts.Client.List(ctx, &list); err != nil {
		c.log.Warn("list gateway classes", "err", err)
		return nil
	}
	var out []string
	for i := range list.Items {
		class := &list.Items[i]
		key, _ := ParamsRef(class, c.opts.Namespace)
		if class.Spec.ControllerName == ControllerName && key != nil && key.Name == obj.GetName() {
			out = append(out, class.Name)
		}
	}
	return out
}

// grantChanged looks at every Gateway again: grants are few and change
// rarely.
func (c *Controller) grantChanged(ctx context.Context, _ client.Object) []reconcile.Request {
	var list gwv1.GatewayList
	if err := c.opts.Client.List(ctx, &list); err != nil {
		c.log.Warn("list gateways", "err", err)
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return out
}
