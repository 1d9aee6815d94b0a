package gatewayctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// EventRecorder records events about objects (client-go's events API).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Options configures the Gateway controller.
type Options struct {
	// Client reads from the informer caches and writes to the API server.
	Client   client.Client
	Recorder EventRecorder
	// Namespace is Pier's: GatewayClass parameters (ConfigMaps) are read
	// there only.
	Namespace string
	Logger    *slog.Logger
	Clock     clock.PassiveClock
}

// Controller reconciles Gateways of the GatewayClasses whose
// controllerName is ControllerName, and those classes. It runs on the
// leader only, like Pier's Service controller.
type Controller struct {
	opts Options
	log  *slog.Logger
}

// New validates opts; it starts nothing (SetupWithManager).
func New(opts Options) (*Controller, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("gateway controller: a client is required")
	case opts.Recorder == nil:
		return nil, errors.New("gateway controller: an event recorder is required")
	case opts.Namespace == "":
		return nil, errors.New("gateway controller: Pier's namespace is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Controller{opts: opts, log: opts.Logger.With("component", "gateway-controller")}, nil
}

// Reconcile brings one Gateway's Service, EndpointSlices and status, and
// its routes' status entries, in line with the spec.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var gw gwv1.Gateway
	if err := c.opts.Client.Get(ctx, req.NamespacedName, &gw); err != nil {
		if apierrors.IsNotFound(err) {
			if err := c.deleteOwned(ctx, req.Namespace, req.Name); err != nil {
				return reconcile.Result{}, err
			}
			return reconcile.Result{}, c.forgetRoutes(ctx, req.Namespace, req.Name)
		}
		return reconcile.Result{}, err
	}
	ours, params, classProblem, err := c.classOf(ctx, &gw)
	if err != nil || !ours {
		if err == nil {
			// Another implementation's Gateway, or one whose class went:
			// what Pier owned for it goes.
			err = c.deleteOwned(ctx, gw.Namespace, gw.Name)
		}
		return reconcile.Result{}, err
	}
	in, err := c.read(ctx, &gw, params)
	if err != nil {
		return reconcile.Result{}, err
	}
	in.ClassProblem = classProblem
	if err := c.apply(ctx, &gw, in, Build(in)); err != nil {
		return reconcile.Result{}, err
	}
	out := Build(in) // the status with the Service and Relay as they now are
	if err := c.writeGatewayStatus(ctx, &gw, out.Status); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, c.writeRouteStatuses(ctx, in.Routes, out.Routes)
}

// apply writes what Build asked for, and records in in what was written:
// the Service and its slices, and the Relay or its absence.
func (c *Controller) apply(ctx context.Context, gw *gwv1.Gateway, in *Input, out *Output) error {
	var err error
	if out.Service == nil {
		return c.deleteOwned(ctx, gw.Namespace, gw.Name)
	}
	in.Service, in.ServiceProblem, err = c.ensureService(ctx, gw, out.Service)
	if err == nil && in.ServiceProblem == "" {
		err = c.syncSlices(ctx, gw.Namespace, out.Service.Name, out.Slices)
	}
	if err != nil {
		return err
	}
	if out.Relay == nil {
		in.Relay = nil
		return c.deleteRelay(ctx, gw.Namespace, gw.Name)
	}
	in.Relay, in.RelayProblem, err = c.ensureRelay(ctx, gw, out.Relay)
	return err
}

// deleteOwned deletes what Pier owns for Gateway namespace/name.
func (c *Controller) deleteOwned(ctx context.Context, namespace, name string) error {
	if err := c.deleteRelay(ctx, namespace, name); err != nil {
		return err
	}
	return c.deleteService(ctx, namespace, name)
}

// forgetRoutes removes Pier's status entries for the deleted Gateway
// namespace/name from the routes that carry one.
func (c *Controller) forgetRoutes(ctx context.Context, namespace, name string) error {
	routes, err := c.routesOf(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
	if err != nil {
		return err
	}
	for i := range routes {
		r := &routes[i]
		kept := slices.DeleteFunc(slices.Clone(r.Status.Parents), func(p gwv1.RouteParentStatus) bool {
			return p.ControllerName == ControllerName && RefersTo(p.ParentRef, r.Namespace, namespace, name)
		})
		if len(kept) == len(r.Status.Parents) {
			continue
		}
		if err := c.writeRouteStatus(ctx, r, kept); err != nil {
			return err
		}
	}
	return nil
}

// classOf reports whether the Gateway's class is Pier's, its parameters
// and, if it is not accepted, why.
func (c *Controller) classOf(ctx context.Context, gw *gwv1.Gateway) (bool, config.GatewayParameters, string, error) {
	var class gwv1.GatewayClass
	if err := c.opts.Client.Get(ctx, client.ObjectKey{Name: string(gw.Spec.GatewayClassName)}, &class); err != nil {
		return false, config.GatewayParameters{}, "", client.IgnoreNotFound(err)
	}
	if class.Spec.ControllerName != ControllerName {
		return false, config.GatewayParameters{}, "", nil
	}
	params, problem, err := c.classParams(ctx, &class)
	if err != nil || problem != "" {
		return true, params, fmt.Sprintf("GatewayClass %s is not accepted: %s", class.Name, problem), err
	}
	return true, params, "", nil
}

// read gathers the Build input: routes, backends, grants, namespaces and
// the owned Service.
func (c *Controller) read(ctx context.Context, gw *gwv1.Gateway, params config.GatewayParameters) (*Input, error) {
	in := &Input{Gateway: gw, Now: metav1.NewTime(c.opts.Clock.Now()), Params: params,
		Services:        map[types.NamespacedName]*corev1.Service{},
		Slices:          map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		NamespaceLabels: map[string]map[string]string{}}
	routes, err := c.routesOf(ctx, gw)
	if err != nil {
		return nil, err
	}
	in.Routes = routes
	grantNS := map[string]bool{}
	for _, r := range routes {
		if err := c.readNamespace(ctx, r.Namespace, in); err != nil {
			return nil, err
		}
		for _, ref := range r.BackendRefs {
			key := BackendKey(ref.BackendObjectReference, r.Namespace)
			if key.Namespace != r.Namespace {
				grantNS[key.Namespace] = true
			}
			if err := c.readBackend(ctx, key, in); err != nil {
				return nil, err
			}
		}
	}
	for ns := range grantNS {
		var grants gwv1.ReferenceGrantList
		if err := c.opts.Client.List(ctx, &grants, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("list ReferenceGrants in %s: %w", ns, err)
		}
		for i := range grants.Items {
			in.Grants = append(in.Grants, &grants.Items[i])
		}
	}
	var svc corev1.Service
	err = c.opts.Client.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: ServiceName(gw.Name)}, &svc)
	switch {
	case err == nil && ownedByGateway(&svc, gw.Name):
		in.Service = &svc
	case client.IgnoreNotFound(err) != nil:
		return nil, fmt.Errorf("get Service %s/%s: %w", gw.Namespace, ServiceName(gw.Name), err)
	}
	var relay v1alpha1.Relay
	err = c.opts.Client.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: RelayName(gw.Name)}, &relay)
	switch {
	case err == nil && ownedByGateway(&relay, gw.Name):
		in.Relay = &relay
	case client.IgnoreNotFound(err) != nil:
		return nil, fmt.Errorf("get Relay %s/%s: %w", gw.Namespace, RelayName(gw.Name), err)
	}
	return in, nil
}

// routesOf lists the TCPRoutes and UDPRoutes naming the Gateway as a
// parent, or showing a status entry of Pier's for it.
func (c *Controller) routesOf(ctx context.Context, gw *gwv1.Gateway) ([]Route, error) {
	key := client.MatchingFields{routeParentIndex: gw.Namespace + "/" + gw.Name}
	var tcp gwv1.TCPRouteList
	if err := c.opts.Client.List(ctx, &tcp, key); err != nil {
		return nil, fmt.Errorf("list TCPRoutes: %w", err)
	}
	var udp gwv1.UDPRouteList
	if err := c.opts.Client.List(ctx, &udp, key); err != nil {
		return nil, fmt.Errorf("list UDPRoutes: %w", err)
	}
	var out []Route
	for i := range tcp.Items {
		out = append(out, TCPRoute(&tcp.Items[i]))
	}
	for i := range udp.Items {
		out = append(out, UDPRoute(&udp.Items[i]))
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Key(), b.Key()) })
	return out, nil
}

func (c *Controller) readNamespace(ctx context.Context, name string, in *Input) error {
	if _, done := in.NamespaceLabels[name]; done {
		return nil
	}
	var ns corev1.Namespace
	if err := c.opts.Client.Get(ctx, client.ObjectKey{Name: name}, &ns); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	in.NamespaceLabels[name] = ns.Labels
	return nil
}

func (c *Controller) readBackend(ctx context.Context, key types.NamespacedName, in *Input) error {
	if _, done := in.Slices[key]; done {
		return nil
	}
	in.Slices[key] = nil
	var svc corev1.Service
	if err := c.opts.Client.Get(ctx, key, &svc); err != nil {
		return client.IgnoreNotFound(err)
	}
	in.Services[key] = &svc
	var list discoveryv1.EndpointSliceList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: key.Name}); err != nil {
		return fmt.Errorf("list EndpointSlices of %s: %w", key, err)
	}
	for i := range list.Items {
		in.Slices[key] = append(in.Slices[key], &list.Items[i])
	}
	return nil
}

// writeGatewayStatus writes the status when it changed.
func (c *Controller) writeGatewayStatus(ctx context.Context, gw *gwv1.Gateway, st gwv1.GatewayStatus) error {
	if equality.Semantic.DeepEqual(gw.Status, st) {
		return nil
	}
	next := gw.DeepCopy()
	next.Status = st
	if err := c.opts.Client.Status().Update(ctx, next); err != nil {
		return fmt.Errorf("write status of Gateway %s/%s: %w", gw.Namespace, gw.Name, err)
	}
	return nil
}

// writeRouteStatuses writes each route's parents when they changed, on
// the version of the route they were computed from: when another
// Gateway's reconcile wrote the route meanwhile, the API server refuses
// the write and the reconcile is retried.
func (c *Controller) writeRouteStatuses(ctx context.Context, routes []Route, parents [][]gwv1.RouteParentStatus) error {
	for i, r := range routes {
		if equality.Semantic.DeepEqual(r.Status.Parents, parents[i]) {
			continue
		}
		if err := c.writeRouteStatus(ctx, &r, parents[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) writeRouteStatus(ctx context.Context, r *Route, parents []gwv1.RouteParentStatus) error {
	if parents == nil {
		parents = []gwv1.RouteParentStatus{}
	}
	key := client.ObjectKey{Namespace: r.Namespace, Name: r.Name}
	var obj client.Object
	switch r.Kind {
	case KindTCPRoute:
		var tr gwv1.TCPRoute
		if err := c.opts.Client.Get(ctx, key, &tr); err != nil {
			return client.IgnoreNotFound(err)
		}
		tr.Status.Parents, tr.ResourceVersion = parents, r.ResourceVersion
		obj = &tr
	default:
		var ur gwv1.UDPRoute
		if err := c.opts.Client.Get(ctx, key, &ur); err != nil {
			return client.IgnoreNotFound(err)
		}
		ur.Status.Parents, ur.ResourceVersion = parents, r.ResourceVersion
		obj = &ur
	}
	if err := c.opts.Client.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("write status of %s: %w", r.Key(), err)
	}
	return nil
}
