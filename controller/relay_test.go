package controller_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller/relayctl"
)

const appNS = "calls"

func relayObj(name string, mutate ...func(*v1alpha1.RelaySpec)) *v1alpha1.Relay {
	r := &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec:       v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "calling"}},
	}
	for _, m := range mutate {
		m(&r.Spec)
	}
	return r
}

// waitRelay polls the Relay until cond holds, or fails the test.
func (e *env) waitRelay(name, what string, cond func(*v1alpha1.Relay) bool) *v1alpha1.Relay {
	e.t.Helper()
	var r v1alpha1.Relay
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: appNS, Name: name}, &r); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(&r), nil
	})
	if err != nil {
		e.t.Fatalf("Relay %s never %s; status %+v", name, what, r.Status)
	}
	return &r
}

// waitGone polls until the object no longer exists.
func (e *env) waitGone(obj client.Object, what string) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		e.t.Fatalf("%s never went away", what)
	}
}

func condition(r *v1alpha1.Relay, typ string) string {
	c := apimeta.FindStatusCondition(r.Status.Conditions, typ)
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + "/" + c.Reason
}

// portsOf summarises a Service's ports as name port/protocol->target nodePort.
func portsOf(svc *corev1.Service, withNodePorts bool) []string {
	var out []string
	for _, p := range svc.Spec.Ports {
		s := fmt.Sprintf("%s %d/%s->%s", p.Name, p.Port, p.Protocol, p.TargetPort.String())
		if withNodePorts {
			s += fmt.Sprintf(" node %d", p.NodePort)
		}
		out = append(out, s)
	}
	return out
}

func slice(name string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	typ := discoveryv1.AddressTypeIPv4
	if len(eps) > 0 && len(eps[0].Addresses) > 0 && inPrefix(eps[0].Addresses[0], mustPrefix("2001:db8::/32")) {
		typ = discoveryv1.AddressTypeIPv6
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: appNS, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "calling"}},
		AddressType: typ,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("calls-tcp"), Port: ptr.To[int32](8443), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

func endpoint(pod, addr string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: appNS, Name: pod},
	}
}

// lease is a relay's Lease for the Relay relay on node, renewed at renew.
func lease(relay, node string, renew time.Time, seconds int32) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: pierNS, Name: v1alpha1.RelayLeaseName(appNS, relay, node), Labels: map[string]string{
			v1alpha1.LabelRelayNamespace: appNS, v1alpha1.LabelRelayName: relay,
		}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To(seconds),
			RenewTime: ptr.To(metav1.NewMicroTime(renew))},
	}
}

func node(name string, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return n
}

// newRelayEnv is a control plane with a pool, the application namespace
// and the controller running.
func newRelayEnv(t *testing.T) (*env, func()) {
	e := newEnv(t)
	e.create(&corev1.Namespace{ObjectMeta: metaName(appNS)})
	e.create(pool("relays", "198.51.100.200-198.51.100.210"))
	return e, e.startController()
}

// A Relay with the default listeners and exposure gets an owned
// LoadBalancer Service with an address from the pool; its status counts
// ready backends (deduplicated across families) and live relay Leases,
// and notices a Lease expiring; drift of the owned Service is undone;
// exposure HostNetwork and deleting the Relay remove the Service.
func TestRelayLoadBalancer(t *testing.T) {
	e, _ := newRelayEnv(t)
	ctx := context.Background()
	r := relayObj("edge")
	e.create(r)

	svc := e.waitFor(appNS, "edge-relay", "got an address", func(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) > 0 })
	if diff := cmp.Diff([]string{"calls-tcp 8443/TCP->8443", "calls-udp 16384/UDP->16384"}, portsOf(svc, false)); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	checkOwnedService(t, svc, r)
	if got := ptr.Deref(svc.Spec.LoadBalancerClass, ""); got != v1alpha1.LoadBalancerClass {
		t.Errorf("loadBalancerClass %q, want %q", got, v1alpha1.LoadBalancerClass)
	}
	addrs := ingress(svc)
	if a := netip.MustParseAddr(addrs[0]); len(addrs) != 1 || a.Less(netip.MustParseAddr("198.51.100.200")) || netip.MustParseAddr("198.51.100.210").Less(a) {
		t.Errorf("address %v not from the pool", addrs)
	}
	got := e.waitRelay("edge", "showed the address", func(r *v1alpha1.Relay) bool { return slices.Equal(r.Status.Addresses, addrs) })
	if got.Status.ServiceName != "edge-relay" || condition(got, relayctl.CondExposed) != "True/AddressAssigned" ||
		condition(got, relayctl.CondReady) != "False/NoReadyBackends" || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("status %+v", got.Status)
	}
	e.waitEvent(appNS, "edge", "ServiceCreated")

	// Backends: a, b ready in both families, c not ready.
	e.create(slice("calling-v4", endpoint("a", "198.51.100.21", true), endpoint("b", "198.51.100.22", true), endpoint("c", "198.51.100.23", false)))
	e.create(slice("calling-v6", endpoint("a", "2001:db8:100::21", true), endpoint("b", "2001:db8:100::22", true)))
	other := slice("other", endpoint("z", "198.51.100.29", true))
	other.Labels[discoveryv1.LabelServiceName] = "not-calling"
	e.create(other)
	got = e.waitRelay("edge", "counted 2 ready backends", func(r *v1alpha1.Relay) bool { return r.Status.ReadyBackends == 2 })
	if c := condition(got, relayctl.CondBackendsReady); c != "True/EndpointsReady" {
		t.Errorf("BackendsReady %s", c)
	}

	// Relays: two live Leases (one about to expire), one expired, one of
	// another Relay. The owned Service's EndpointSlice lists the nodes of
	// the live ones.
	e.create(node("node1", "198.51.100.11", "2001:db8:100::11"))
	e.create(node("node2", "198.51.100.12"))
	e.create(node("node3", "198.51.100.13"))
	now := time.Now()
	e.create(lease("edge", "node1", now, 3600))
	e.create(lease("edge", "node2", now, 4))
	e.create(lease("edge", "node3", now.Add(-time.Hour), 10))
	e.create(lease("elsewhere", "node1", now, 3600))
	got = e.waitRelay("edge", "counted 2 ready relays", func(r *v1alpha1.Relay) bool { return r.Status.ReadyRelays == 2 })
	if c := condition(got, relayctl.CondReady); c != "True/Ready" {
		t.Errorf("Ready %s with 2 relays and 2 backends", c)
	}
	e.waitSlice("edge-relay-ipv4", []string{"node1 198.51.100.11", "node2 198.51.100.12"})
	e.waitRelay("edge", "noticed node2's Lease expire", func(r *v1alpha1.Relay) bool { return r.Status.ReadyRelays == 1 })
	if time.Since(now) < 4*time.Second {
		t.Errorf("readyRelays dropped to 1 after %v, before the 4 s Lease expired", time.Since(now))
	}
	es := e.waitSlice("edge-relay-ipv4", []string{"node1 198.51.100.11"})
	wantPorts := []string{"calls-tcp 8443/TCP", "calls-udp 16384/UDP"}
	if diff := cmp.Diff(wantPorts, slicePorts(es)); diff != "" {
		t.Errorf("EndpointSlice ports (-want +got):\n%s", diff)
	}
	if es.AddressType != discoveryv1.AddressTypeIPv4 || es.Labels[discoveryv1.LabelServiceName] != "edge-relay" ||
		es.Labels[discoveryv1.LabelManagedBy] != relayctl.SliceManager {
		t.Errorf("EndpointSlice %s labels %v", es.AddressType, es.Labels)
	}

	// Drift: someone changes the owned Service's port.
	svc = e.getService(appNS, "edge-relay")
	svc.Spec.Ports[0].Port = 9443
	if err := e.c.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	e.waitFor(appNS, "edge-relay", "got its port back", func(s *corev1.Service) bool {
		return slices.Equal(portsOf(s, false), []string{"calls-tcp 8443/TCP->8443", "calls-udp 16384/UDP->16384"})
	})
	e.waitEvent(appNS, "edge", "ServiceUpdated")

	// HostNetwork: the Service and its EndpointSlice go; the addresses are
	// those of the nodes whose relays hold a live Lease (node1).
	e.updateRelay("edge", func(s *v1alpha1.RelaySpec) { s.Exposure.Type = v1alpha1.ExposeHostNetwork })
	e.waitGone(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "edge-relay"}}, "the owned Service (HostNetwork)")
	e.waitGone(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "edge-relay-ipv4"}}, "the owned EndpointSlice (HostNetwork)")
	got = e.waitRelay("edge", "showed node1's addresses", func(r *v1alpha1.Relay) bool {
		return slices.Equal(r.Status.Addresses, []string{"198.51.100.11", "2001:db8:100::11"})
	})
	if got.Status.ServiceName != "" || condition(got, relayctl.CondExposed) != "True/HostNetwork" {
		t.Errorf("status with HostNetwork %+v", got.Status)
	}
	e.waitEvent(appNS, "edge", "ServiceDeleted")

	// Back to LoadBalancer, then the Relay is deleted.
	e.updateRelay("edge", func(s *v1alpha1.RelaySpec) { s.Exposure.Type = v1alpha1.ExposeLoadBalancer })
	e.waitAssigned(appNS, "edge-relay")
	if err := e.c.Delete(ctx, relayObj("edge")); err != nil {
		t.Fatal(err)
	}
	e.waitGone(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "edge-relay"}}, "the owned Service (Relay deleted)")
	e.waitGone(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "edge-relay-ipv4"}}, "the owned EndpointSlice (Relay deleted)")
}

// waitSlice waits until the EndpointSlice lists exactly the ready
// endpoints want ("node address").
func (e *env) waitSlice(name string, want []string) *discoveryv1.EndpointSlice {
	e.t.Helper()
	var (
		es  discoveryv1.EndpointSlice
		got []string
	)
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: appNS, Name: name}, &es); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		got = nil
		for _, ep := range es.Endpoints {
			if ptr.Deref(ep.Conditions.Ready, false) {
				got = append(got, ptr.Deref(ep.NodeName, "")+" "+strings.Join(ep.Addresses, ","))
			}
		}
		return slices.Equal(got, want), nil
	})
	if err != nil {
		e.t.Fatalf("EndpointSlice %s never listed %v; last %v", name, want, got)
	}
	return &es
}

func slicePorts(es *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, p := range es.Ports {
		out = append(out, fmt.Sprintf("%s %d/%s", ptr.Deref(p.Name, ""), ptr.Deref(p.Port, 0), ptr.Deref(p.Protocol, "")))
	}
	return out
}

// checkOwnedService checks what every owned Service carries.
func checkOwnedService(t *testing.T, svc *corev1.Service, r *v1alpha1.Relay) {
	t.Helper()
	ref := metav1.GetControllerOf(svc)
	if ref == nil || ref.Kind != "Relay" || ref.Name != r.Name || ref.UID != r.UID || ref.APIVersion != v1alpha1.GroupVersion.String() {
		t.Errorf("controller reference %+v, want Relay %s (%s)", ref, r.Name, r.UID)
	}
	if len(svc.Spec.Selector) > 0 {
		t.Errorf("selector %v: the relay pods are in another namespace; Pier writes the EndpointSlices", svc.Spec.Selector)
	}
	if svc.Labels[relayctl.LabelManagedBy] != relayctl.ManagedByPier || svc.Labels[v1alpha1.LabelRelayName] != r.Name {
		t.Errorf("labels %v", svc.Labels)
	}
	if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("externalTrafficPolicy %q", svc.Spec.ExternalTrafficPolicy)
	}
}

// NodePort exposure keeps a fixed node port and lets the API server
// allocate the other; annotations follow the Relay. A Relay deleted while
// the controller is down loses its Service when the controller is back.
func TestRelayNodePort(t *testing.T) {
	e, stop := newRelayEnv(t)
	ctx := context.Background()
	r := relayObj("np", func(s *v1alpha1.RelaySpec) {
		s.Exposure.Type = v1alpha1.ExposeNodePort
		s.Exposure.ServiceAnnotations = map[string]string{"example.com/team": "calls", "example.com/old": "x"}
		s.Listeners = []v1alpha1.RelayListener{
			{Name: "sig", Protocol: corev1.ProtocolTCP, Port: 5061, NodePort: 31061},
			{Name: "media", Protocol: corev1.ProtocolUDP, Port: 16384},
		}
	})
	e.create(r)
	svc := e.waitFor(appNS, "np-relay", "exists", func(*corev1.Service) bool { return true })
	checkOwnedService(t, svc, r)
	if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.LoadBalancerClass != nil {
		t.Errorf("type %s class %v, want NodePort without class", svc.Spec.Type, svc.Spec.LoadBalancerClass)
	}
	if p := svc.Spec.Ports; len(p) != 2 || p[0].NodePort != 31061 || p[1].NodePort < 30000 || p[1].NodePort > 32767 {
		t.Fatalf("ports %v", portsOf(svc, true))
	}
	if svc.Annotations["example.com/team"] != "calls" || svc.Annotations["example.com/old"] != "x" {
		t.Errorf("annotations %v", svc.Annotations)
	}
	allocated := svc.Spec.Ports[1].NodePort
	e.waitSlice("np-relay-ipv4", nil) // no relay yet: no endpoint
	got := e.waitRelay("np", "exposed", func(r *v1alpha1.Relay) bool { return condition(r, relayctl.CondExposed) == "True/NodePortsAllocated" })
	if got.Status.ServiceName != "np-relay" {
		t.Errorf("serviceName %q", got.Status.ServiceName)
	}

	// An annotation removed from the Relay goes; the allocated port stays.
	e.updateRelay("np", func(s *v1alpha1.RelaySpec) { delete(s.Exposure.ServiceAnnotations, "example.com/old") })
	svc = e.waitFor(appNS, "np-relay", "lost the old annotation", func(s *corev1.Service) bool {
		_, old := s.Annotations["example.com/old"]
		return !old
	})
	if svc.Annotations["example.com/team"] != "calls" || svc.Spec.Ports[1].NodePort != allocated {
		t.Errorf("after the annotation change: annotations %v, ports %v (UDP node port was %d)", svc.Annotations, portsOf(svc, true), allocated)
	}

	stop()
	if err := e.c.Delete(ctx, relayObj("np")); err != nil {
		t.Fatal(err)
	}
	e.startController()
	e.waitGone(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "np-relay"}}, "the Service of the Relay deleted while the controller was down")
	e.waitGone(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "np-relay-ipv4"}}, "the EndpointSlice of the Relay deleted while the controller was down")
}

// The controller refuses to take over a Service it does not own, and
// reports a Relay the webhook did not check (it was down) as invalid
// without creating anything.
func TestRelayConflictAndInvalid(t *testing.T) {
	e, _ := newRelayEnv(t)
	ctx := context.Background()
	e.create(service(appNS, "taken-relay"))
	e.create(relayObj("taken"))
	got := e.waitRelay("taken", "reported the conflict", func(r *v1alpha1.Relay) bool {
		return condition(r, relayctl.CondExposed) == "False/ServiceConflict"
	})
	if condition(got, relayctl.CondReady) != "False/NotExposed" || got.Status.ServiceName != "" {
		t.Errorf("status %+v", got.Status)
	}
	e.waitEvent(appNS, "taken", "ServiceConflict")
	if svc := e.getService(appNS, "taken-relay"); metav1.GetControllerOf(svc) != nil || svc.Spec.Ports[0].Name != "calls" {
		t.Errorf("someone else's Service was changed: %+v", svc.Spec)
	}

	e.create(relayObj("bad", func(s *v1alpha1.RelaySpec) {
		s.Listeners = []v1alpha1.RelayListener{
			{Name: "a", Protocol: corev1.ProtocolUDP, Port: 16384},
			{Name: "b", Protocol: corev1.ProtocolUDP, Port: 16384},
		}
	}))
	got = e.waitRelay("bad", "reported the invalid spec", func(r *v1alpha1.Relay) bool {
		return condition(r, relayctl.CondReady) == "False/InvalidSpec"
	})
	if c := apimeta.FindStatusCondition(got.Status.Conditions, relayctl.CondReady); c.Message != "spec.listeners[1].port: 16384/UDP is also spec.listeners[0]" {
		t.Errorf("Ready message %q", c.Message)
	}
	if note := e.waitEvent(appNS, "bad", "InvalidSpec"); note != "spec.listeners[1].port: 16384/UDP is also spec.listeners[0]" {
		t.Errorf("event note %q", note)
	}
	var svc corev1.Service
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: appNS, Name: "bad-relay"}, &svc); !apierrors.IsNotFound(err) {
		t.Errorf("an invalid Relay got a Service: %v", err)
	}
}

func (e *env) getService(ns, name string) *corev1.Service {
	e.t.Helper()
	var svc corev1.Service
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		e.t.Fatal(err)
	}
	return &svc
}

// updateRelay changes a Relay's spec, retrying on conflicts with the
// controller's status writes.
func (e *env) updateRelay(name string, mutate func(*v1alpha1.RelaySpec)) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		var r v1alpha1.Relay
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: appNS, Name: name}, &r); err != nil {
			return false, err
		}
		mutate(&r.Spec)
		err := e.c.Update(ctx, &r)
		return err == nil, client.IgnoreNotFound(ignoreConflict(err))
	})
	if err != nil {
		e.t.Fatalf("update Relay %s: %v", name, err)
	}
}

func ignoreConflict(err error) error {
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}
