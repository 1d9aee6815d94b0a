package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/controller"
	"github.com/pier-lb/pier/controller/gatewayctl"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/manifests"
)

// gwEnv is a control plane with Pier's and the Gateway API's CRDs, a pool
// and a controller serving Gateways.
type gwEnv struct {
	*env
	gc client.Client
}

func newGatewayEnv(t *testing.T) *gwEnv { return newGatewayEnvOn(t, manifests.GatewayAPIStandard) }

// newGatewayEnvOn is newGatewayEnv with the CRDs of the Gateway API
// channel given.
func newGatewayEnvOn(t *testing.T, channel string) *gwEnv {
	e := newEnv(t)
	if err := manifests.InstallGatewayAPI(context.Background(), e.cluster.Config, channel); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	gwv1.Install(scheme)
	gc, err := client.New(e.cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e.create(pool("l2", "198.51.100.200-198.51.100.250"))
	e.startController(func(o *controller.ManagerOptions) { o.GatewayAPI = true })
	g := &gwEnv{env: e, gc: gc}
	for _, ns := range []string{"calls", "media"} {
		g.gcreate(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	g.gcreate(&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "pier"}, Spec: gwv1.GatewayClassSpec{ControllerName: gatewayctl.ControllerName}})
	return g
}

func (g *gwEnv) gcreate(obj client.Object) {
	g.t.Helper()
	if err := g.gc.Create(context.Background(), obj); err != nil {
		g.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// poll retries f for up to 30 s.
func (g *gwEnv) poll(what string, f func(ctx context.Context) error) {
	g.t.Helper()
	lab.Poll(g.t, what, 50*time.Millisecond, 30*time.Second, func() error { return f(context.Background()) })
}

// condIs checks that conds has typ with status and reason.
func condIs(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c := apimeta.FindStatusCondition(conds, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		return fmt.Errorf("condition %s is %+v, want %s %s", typ, c, status, reason)
	}
	return nil
}

func (g *gwEnv) waitGateway(name, typ string, status metav1.ConditionStatus, reason string) *gwv1.Gateway {
	g.t.Helper()
	var gw gwv1.Gateway
	g.poll("gateway "+name+" "+typ+" "+reason, func(ctx context.Context) error {
		if err := g.gc.Get(ctx, client.ObjectKey{Namespace: "calls", Name: name}, &gw); err != nil {
			return err
		}
		return condIs(gw.Status.Conditions, typ, status, reason)
	})
	return &gw
}

// waitRoute waits until the route's entry for Gateway gateway has the
// two conditions.
func (g *gwEnv) waitRoute(obj client.Object, gateway, accepted, resolved string) {
	g.t.Helper()
	g.poll(fmt.Sprintf("%s route %s: Accepted %s, ResolvedRefs %s", gateway, obj.GetName(), accepted, resolved), func(ctx context.Context) error {
		if err := g.gc.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		var parents []gwv1.RouteParentStatus
		switch r := obj.(type) {
		case *gwv1.TCPRoute:
			parents = r.Status.Parents
		case *gwv1.UDPRoute:
			parents = r.Status.Parents
		}
		for _, p := range parents {
			if p.ControllerName != gatewayctl.ControllerName || string(p.ParentRef.Name) != gateway {
				continue
			}
			got := summary(p.Conditions, "Accepted") + ", " + summary(p.Conditions, "ResolvedRefs")
			if want := accepted + ", " + resolved; got != want {
				return fmt.Errorf("conditions %s, want %s", got, want)
			}
			return nil
		}
		return fmt.Errorf("no status entry of Pier's in %v", parents)
	})
}

func summary(conds []metav1.Condition, typ string) string {
	c := apimeta.FindStatusCondition(conds, typ)
	if c == nil {
		return "none"
	}
	return string(c.Status) + " " + c.Reason
}

// gatewaySlices lists the endpoints of the Gateway Service's slices as
// "slice: addr,addr".
func (g *gwEnv) gatewaySlices(ctx context.Context, gateway string) ([]string, error) {
	return g.listSlices(ctx, gateway, func(es *discoveryv1.EndpointSlice, addrs []string) string {
		return fmt.Sprintf("%s %s/%d: %v", es.Name, *es.Ports[0].Protocol, *es.Ports[0].Port, addrs)
	})
}

// listSlices lists the Gateway Service's slices, each a line of line
// with its sorted endpoint addresses, sorted.
func (g *gwEnv) listSlices(ctx context.Context, gateway string, line func(*discoveryv1.EndpointSlice, []string) string) ([]string, error) {
	var list discoveryv1.EndpointSliceList
	if err := g.gc.List(ctx, &list, client.InNamespace("calls"),
		client.MatchingLabels{discoveryv1.LabelServiceName: gatewayctl.ServiceName(gateway)}); err != nil {
		return nil, err
	}
	var out []string
	for i := range list.Items {
		var addrs []string
		for _, e := range list.Items[i].Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
		slices.Sort(addrs)
		out = append(out, line(&list.Items[i], addrs))
	}
	slices.Sort(out)
	return out, nil
}

func (g *gwEnv) waitSlices(gateway string, want []string) {
	g.t.Helper()
	g.poll("slices of "+gateway, func(ctx context.Context) error {
		got, err := g.gatewaySlices(ctx, gateway)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("(-want +got):\n%s", diff)
		}
		return nil
	})
}

func callServer(ns string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "callserver"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "callserver"}, Ports: []corev1.ServicePort{
			{Name: "sip", Protocol: corev1.ProtocolTCP, Port: 5061},
			{Name: "rtp", Protocol: corev1.ProtocolUDP, Port: 20000},
		}},
	}
}

func callServerSlice(ns string, ready map[string]bool) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "callserver-1", Labels: map[string]string{discoveryv1.LabelServiceName: "callserver"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("sip"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](15061)},
			{Name: ptr.To("rtp"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](30000)},
		},
	}
	for _, a := range slices.Sorted(func(yield func(string) bool) {
		for a := range ready {
			if !yield(a) {
				return
			}
		}
	}) {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready[a])}})
	}
	return es
}

func edgeGateway(name string, addr string, listeners ...gwv1.Listener) *gwv1.Gateway {
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: name},
		Spec:       gwv1.GatewaySpec{GatewayClassName: "pier", Listeners: listeners},
	}
	if addr != "" {
		gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.IPAddressType), Value: addr}}
	}
	return gw
}

func tcpRoute(name, gateway string, backend gwv1.BackendRef, mutate ...func(*gwv1.TCPRoute)) *gwv1.TCPRoute {
	r := &gwv1.TCPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: name},
		Spec: gwv1.TCPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: gwv1.ObjectName(gateway)}}},
			Rules:           []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{backend}}},
		},
	}
	for _, m := range mutate {
		m(r)
	}
	return r
}

func backend(ns, name string, port int32) gwv1.BackendRef {
	ref := gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(port)}}
	if ns != "" {
		ref.Namespace = ptr.To(gwv1.Namespace(ns))
	}
	return ref
}

var (
	tcpL = gwv1.Listener{Name: "signalling", Protocol: gwv1.TCPProtocolType, Port: 8443}
	udpL = gwv1.Listener{Name: "media", Protocol: gwv1.UDPProtocolType, Port: 16384}
)

// TestGatewayAPI runs the Gateway controller against a real API server:
// a Gateway with a TCP and a UDP listener and a route to each gets a
// Service with its requested address from Pier's allocator, EndpointSlices
// that follow the backend's, and the spec's status; bad input gets the
// spec's reasons and leaves the served Gateway as it was.
func TestGatewayAPI(t *testing.T) {
	g := newGatewayEnv(t)
	g.poll("GatewayClass accepted", func(ctx context.Context) error {
		var class gwv1.GatewayClass
		if err := g.gc.Get(ctx, client.ObjectKey{Name: "pier"}, &class); err != nil {
			return err
		}
		if diff := cmp.Diff(gatewayctl.SupportedFeatures, class.Status.SupportedFeatures); diff != "" {
			return fmt.Errorf("supportedFeatures (-want +got):\n%s", diff)
		}
		return condIs(class.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted")
	})
	g.gcreate(callServer("calls"))
	g.gcreate(callServerSlice("calls", map[string]bool{"10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": false}))
	g.gcreate(edgeGateway("edge", "198.51.100.210", tcpL, udpL))
	sip := tcpRoute("sip", "edge", backend("", "callserver", 5061))
	g.gcreate(sip)
	rtp := &gwv1.UDPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "calls", Name: "rtp"},
		Spec: gwv1.UDPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
			Rules:           []gwv1.UDPRouteRule{{BackendRefs: []gwv1.BackendRef{backend("", "callserver", 20000)}}},
		},
	}
	g.gcreate(rtp)

	gw := g.waitGateway("edge", "Programmed", metav1.ConditionTrue, "Programmed")
	want := []gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.IPAddressType), Value: "198.51.100.210"}}
	if diff := cmp.Diff(want, gw.Status.Addresses); diff != "" {
		t.Errorf("status.addresses (-want +got):\n%s", diff)
	}
	if got := g.waitAssigned("calls", "edge-gateway"); !cmp.Equal(got, []string{"198.51.100.210"}) {
		t.Errorf("Service edge-gateway has %v, want the Gateway's address", got)
	}
	for _, l := range gw.Status.Listeners {
		if l.AttachedRoutes != 1 || condIs(l.Conditions, "Programmed", metav1.ConditionTrue, "Programmed") != nil {
			t.Errorf("listener %s: %d routes, conditions %+v", l.Name, l.AttachedRoutes, l.Conditions)
		}
	}
	g.waitRoute(sip, "edge", "True Accepted", "True ResolvedRefs")
	g.waitRoute(rtp, "edge", "True Accepted", "True ResolvedRefs")
	served := []string{
		"edge-gateway-tcp-8443-15061-ipv4 TCP/15061: [10.0.0.1 10.0.0.2]",
		"edge-gateway-udp-16384-30000-ipv4 UDP/30000: [10.0.0.1 10.0.0.2]",
	}
	g.waitSlices("edge", served)

	t.Run("slices follow the backend's readiness", func(t *testing.T) {
		var es discoveryv1.EndpointSlice
		if err := g.gc.Get(context.Background(), client.ObjectKey{Namespace: "calls", Name: "callserver-1"}, &es); err != nil {
			t.Fatal(err)
		}
		es.Endpoints = callServerSlice("calls", map[string]bool{"10.0.0.1": true, "10.0.0.2": false, "10.0.0.3": true}).Endpoints
		if err := g.gc.Update(context.Background(), &es); err != nil {
			t.Fatal(err)
		}
		served = []string{
			"edge-gateway-tcp-8443-15061-ipv4 TCP/15061: [10.0.0.1 10.0.0.3]",
			"edge-gateway-udp-16384-30000-ipv4 UDP/30000: [10.0.0.1 10.0.0.3]",
		}
		g.waitSlices("edge", served)
	})

	t.Run("missing Service: BackendNotFound", func(t *testing.T) {
		// Routes sharing sip's listener sort after it by name: one created
		// in the same second as sip would otherwise bind the listener
		// (the conflict rule's tie-break) and sip's backends would go.
		r := tcpRoute("x-missing", "edge", backend("", "nosuch", 5061))
		g.gcreate(r)
		g.waitRoute(r, "edge", "True Accepted", "False BackendNotFound")
	})
	t.Run("backend in another namespace: RefNotPermitted until granted", func(t *testing.T) {
		g.gcreate(callServer("media"))
		g.gcreate(callServerSlice("media", map[string]bool{"10.0.1.1": true}))
		r := tcpRoute("x-other-ns", "edge", backend("media", "callserver", 5061))
		g.gcreate(r)
		g.waitRoute(r, "edge", "True Accepted", "False RefNotPermitted")
		g.gcreate(&gwv1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "media", Name: "calls-routes"},
			Spec: gwv1.ReferenceGrantSpec{From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "TCPRoute", Namespace: "calls"}},
				To: []gwv1.ReferenceGrantTo{{Kind: "Service", Name: ptr.To(gwv1.ObjectName("callserver"))}}}})
		g.waitRoute(r, "edge", "True Accepted", "True ResolvedRefs")
		// The older route sip holds the listener: only its backends are
		// served (the conflict rule), granted or not.
		g.waitSlices("edge", served)
		if err := g.gc.Delete(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sectionName naming no listener: NoMatchingParent", func(t *testing.T) {
		r := tcpRoute("nolistener", "edge", backend("", "callserver", 5061), func(r *gwv1.TCPRoute) {
			r.Spec.ParentRefs[0].SectionName = ptr.To(gwv1.SectionName("nosuch"))
		})
		g.gcreate(r)
		g.waitRoute(r, "edge", "False NoMatchingParent", "True ResolvedRefs")
	})
	t.Run("HTTP only: ListenersNotValid, no Service", func(t *testing.T) {
		g.gcreate(edgeGateway("web", "", gwv1.Listener{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80}))
		gw := g.waitGateway("web", "Accepted", metav1.ConditionFalse, "ListenersNotValid")
		if err := condIs(gw.Status.Listeners[0].Conditions, "Accepted", metav1.ConditionFalse, "UnsupportedProtocol"); err != nil {
			t.Error(err)
		}
		var svc corev1.Service
		if err := g.gc.Get(context.Background(), client.ObjectKey{Namespace: "calls", Name: "web-gateway"}, &svc); err == nil {
			t.Errorf("Service web-gateway created for a Gateway without a listener Pier serves")
		}
	})
	t.Run("Service name taken: NoResources until it is free", func(t *testing.T) {
		taken := service("calls", "taken-gateway")
		g.gcreate(taken)
		g.gcreate(edgeGateway("taken", "", tcpL))
		g.waitGateway("taken", "Programmed", metav1.ConditionFalse, "NoResources")
		if err := g.gc.Delete(context.Background(), taken); err != nil {
			t.Fatal(err)
		}
		g.waitGateway("taken", "Programmed", metav1.ConditionTrue, "Programmed")
	})
	t.Run("address outside every pool: AddressNotUsable until fixed", func(t *testing.T) {
		g.gcreate(edgeGateway("outside", "203.0.113.99", tcpL))
		gw := g.waitGateway("outside", "Programmed", metav1.ConditionFalse, "AddressNotUsable")
		if msg := apimeta.FindStatusCondition(gw.Status.Conditions, "Programmed").Message; !strings.Contains(msg, "203.0.113.99") {
			t.Errorf("Programmed message %q does not name the address", msg)
		}
		gw.Spec.Addresses[0].Value = "198.51.100.212"
		if err := g.gc.Update(context.Background(), gw); err != nil {
			t.Fatal(err)
		}
		g.waitGateway("outside", "Programmed", metav1.ConditionTrue, "Programmed")
	})
	t.Run("the served Gateway is undisturbed", func(t *testing.T) {
		gw := g.waitGateway("edge", "Programmed", metav1.ConditionTrue, "Programmed")
		if diff := cmp.Diff(want, gw.Status.Addresses); diff != "" {
			t.Errorf("status.addresses (-want +got):\n%s", diff)
		}
		g.waitSlices("edge", served)
		g.waitRoute(sip, "edge", "True Accepted", "True ResolvedRefs")
	})
	t.Run("deleting the Gateway deletes its Service", func(t *testing.T) {
		if err := g.gc.Delete(context.Background(), edgeGateway("edge", "", tcpL)); err != nil {
			t.Fatal(err)
		}
		g.poll("Service edge-gateway gone", func(ctx context.Context) error {
			var svc corev1.Service
			err := g.gc.Get(ctx, client.ObjectKey{Namespace: "calls", Name: "edge-gateway"}, &svc)
			if err == nil {
				return fmt.Errorf("still there")
			}
			return client.IgnoreNotFound(err)
		})
		g.waitSlices("edge", nil)
		g.poll("route sip without a status entry for edge", func(ctx context.Context) error {
			var r gwv1.TCPRoute
			if err := g.gc.Get(ctx, client.ObjectKeyFromObject(sip), &r); err != nil {
				return err
			}
			if len(r.Status.Parents) != 0 {
				return fmt.Errorf("parents %+v", r.Status.Parents)
			}
			return nil
		})
	})
	t.Run("a class stays while a Gateway uses it", func(t *testing.T) {
		ctx := context.Background()
		class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "pier-b"}, Spec: gwv1.GatewayClassSpec{ControllerName: gatewayctl.ControllerName}}
		g.gcreate(class)
		gw := edgeGateway("on-b", "", tcpL)
		gw.Spec.GatewayClassName = "pier-b"
		g.gcreate(gw)
		g.poll("finalizer on pier-b", func(ctx context.Context) error {
			if err := g.gc.Get(ctx, client.ObjectKeyFromObject(class), class); err != nil {
				return err
			}
			if !slices.Contains(class.Finalizers, gatewayctl.ClassFinalizer) {
				return fmt.Errorf("finalizers %v", class.Finalizers)
			}
			return nil
		})
		if err := g.gc.Delete(ctx, class); err != nil {
			t.Fatal(err)
		}
		if err := g.gc.Get(ctx, client.ObjectKeyFromObject(class), class); err != nil || class.DeletionTimestamp.IsZero() {
			t.Fatalf("class after delete: %v, deletionTimestamp %v; want it kept for its Gateway", err, class.DeletionTimestamp)
		}
		if err := g.gc.Delete(ctx, gw); err != nil {
			t.Fatal(err)
		}
		g.poll("pier-b gone", func(ctx context.Context) error {
			if err := g.gc.Get(ctx, client.ObjectKeyFromObject(class), class); !apierrors.IsNotFound(err) {
				return fmt.Errorf("class still there (%v), finalizers %v", err, class.Finalizers)
			}
			return nil
		})
	})
}

// TestGatewayAPIExperimentalChannel: with the experimental channel's CRDs
// (a superset, which some products install cluster-wide) a Gateway is
// programmed and its routes served as with the standard channel.
func TestGatewayAPIExperimentalChannel(t *testing.T) {
	g := newGatewayEnvOn(t, manifests.GatewayAPIExperimental)
	g.gcreate(callServer("calls"))
	g.gcreate(callServerSlice("calls", map[string]bool{"10.0.0.1": true}))
	g.gcreate(edgeGateway("edge", "", tcpL))
	sip := tcpRoute("sip", "edge", backend("", "callserver", 5061))
	g.gcreate(sip)
	g.waitGateway("edge", "Programmed", metav1.ConditionTrue, "Programmed")
	g.waitRoute(sip, "edge", "True Accepted", "True ResolvedRefs")
	g.waitSlices("edge", []string{"edge-gateway-tcp-8443-15061-ipv4 TCP/15061: [10.0.0.1]"})
}

// TestGatewayAPIRequiresCRDs: with --gateway-api on and the Gateway API
// CRDs absent, the controller refuses to start and says why, instead of
// waiting for informers that never sync.
func TestGatewayAPIRequiresCRDs(t *testing.T) {
	e := newEnv(t)
	_, _, err := controller.NewManager(controller.ManagerOptions{
		Config: e.cluster.Config, Namespace: pierNS, MetricsAddr: "0", HealthAddr: "0",
		Registerer: prometheus.NewRegistry(), GatewayAPI: true,
	})
	if err == nil || !strings.Contains(err.Error(), "gateway API on") || !strings.Contains(err.Error(), "gateways") {
		t.Fatalf("NewManager: %v, want a refusal naming the missing Gateway API resources", err)
	}
}
