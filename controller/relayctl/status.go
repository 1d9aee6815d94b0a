package relayctl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/relay/agent"
)

// Condition types and reasons of a Relay's status.
const (
	CondReady         = "Ready"
	CondBackendsReady = "BackendsReady"
	CondExposed       = "Exposed"

	reasonInvalidSpec = "InvalidSpec"
)

// expiryMargin is added to the next Lease expiry before the Relay is
// looked at again, so the Lease has expired by then.
const expiryMargin = 100 * time.Millisecond

// observation is what one reconcile found for a Relay.
type observation struct {
	exposure v1alpha1.RelayExposureType
	invalid  string // the spec's problems, "" when valid
	svc      *corev1.Service
	exposed  exposedCond
	retry    bool // a refused Service write is tried again later
	backends int
	// relays are the nodes holding a live Lease for the Relay, sorted;
	// nodes those of them that exist, with their addresses.
	relays    []string
	nodes     []relayNode
	addresses []string
	// nextExpiry is the time until the first live Lease expires (0: none).
	nextExpiry time.Duration
}

// exposedCond is the Exposed condition.
type exposedCond struct {
	ok          bool
	reason, msg string
}

// exposedFor judges an owned Service: a LoadBalancer is exposed once it
// has an address, a NodePort once every port has its node port.
func exposedFor(exp v1alpha1.RelayExposureType, svc *corev1.Service) exposedCond {
	if exp == v1alpha1.ExposeNodePort {
		var ports []string
		for _, p := range svc.Spec.Ports {
			if p.NodePort == 0 {
				return exposedCond{reason: "NodePortsPending", msg: fmt.Sprintf("Service %s has no node port for %s yet", svc.Name, p.Name)}
			}
			ports = append(ports, fmt.Sprintf("%d/%s", p.NodePort, p.Protocol))
		}
		return exposedCond{ok: true, reason: "NodePortsAllocated", msg: fmt.Sprintf("Service %s: node ports %s", svc.Name, strings.Join(ports, ", "))}
	}
	addrs := ingressIPs(svc)
	if len(addrs) == 0 {
		return exposedCond{reason: "AddressPending", msg: fmt.Sprintf("Service %s has no address from a pool yet", svc.Name)}
	}
	return exposedCond{ok: true, reason: "AddressAssigned", msg: fmt.Sprintf("Service %s: %s", svc.Name, strings.Join(addrs, ", "))}
}

func ingressIPs(svc *corev1.Service) []string {
	var out []string
	for _, a := range config.IngressAddrs(svc) {
		out = append(out, a.String())
	}
	return out
}

// relayLeases lists the Leases relays renew for relay, in the lease
// namespace and the old one.
func (c *Controller) relayLeases(ctx context.Context, relay *v1alpha1.Relay) ([]coordinationv1.Lease, error) {
	var out []coordinationv1.Lease
	for _, ns := range c.leaseNamespaces() {
		var leases coordinationv1.LeaseList
		if err := c.opts.Client.List(ctx, &leases, client.InNamespace(ns), client.MatchingLabels{
			v1alpha1.LabelRelayNamespace: relay.Namespace, v1alpha1.LabelRelayName: relay.Name,
		}); err != nil {
			return nil, fmt.Errorf("list relay Leases in %s: %w", ns, err)
		}
		out = append(out, leases.Items...)
	}
	return out, nil
}

func (c *Controller) leaseNamespaces() []string {
	if o := c.opts.OldLeaseNamespace; o != "" && o != c.opts.Namespace {
		return []string{c.opts.Namespace, o}
	}
	return []string{c.opts.Namespace}
}

// observe counts ready backends and relays and finds the addresses.
func (c *Controller) observe(ctx context.Context, relay *v1alpha1.Relay, obs *observation) error {
	var eps discoveryv1.EndpointSliceList
	if err := c.opts.Client.List(ctx, &eps, client.InNamespace(relay.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: relay.Spec.Backend.ServiceName}); err != nil {
		return fmt.Errorf("list EndpointSlices of %s/%s: %w", relay.Namespace, relay.Spec.Backend.ServiceName, err)
	}
	obs.backends = readyEndpoints(relay, eps.Items)
	leases, err := c.relayLeases(ctx, relay)
	if err != nil {
		return err
	}
	obs.relays, obs.nextExpiry = c.leases.live(client.ObjectKeyFromObject(relay), leases)
	nodes, err := c.relayNodes(ctx, obs.relays)
	if err != nil {
		return err
	}
	obs.nodes = nodes
	if obs.exposure == v1alpha1.ExposeLoadBalancer {
		if obs.svc != nil {
			obs.addresses = ingressIPs(obs.svc)
		}
		return nil
	}
	obs.addresses = nodeAddrs(nodes)
	return nil
}

// readyEndpoints counts the backends the relays use: agent.Backends, the
// same ready endpoints under the same names (an endpoint listed in an IPv4
// and an IPv6 slice once), so status.readyBackends is what the relays see.
func readyEndpoints(relay *v1alpha1.Relay, eps []discoveryv1.EndpointSlice) int {
	return len(agent.Backends(relay, eps))
}

// statusFor is the status relay should show for obs. Conditions keep their
// transition time while their status does not change.
func statusFor(relay *v1alpha1.Relay, obs *observation, now time.Time) v1alpha1.RelayStatus {
	st := v1alpha1.RelayStatus{
		Addresses:          obs.addresses,
		ReadyBackends:      int32(obs.backends),
		ReadyRelays:        int32(len(obs.relays)),
		ObservedGeneration: relay.Generation,
		Conditions:         slices.Clone(relay.Status.Conditions),
	}
	if obs.svc != nil {
		st.ServiceName = obs.svc.Name
	}
	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: relay.Generation, LastTransitionTime: metav1.NewTime(now)})
	}
	set(CondExposed, obs.exposed.ok, obs.exposed.reason, obs.exposed.msg)
	backend := relay.Spec.Backend.ServiceName
	if obs.backends > 0 {
		set(CondBackendsReady, true, "EndpointsReady", fmt.Sprintf("%d ready endpoints in Service %s", obs.backends, backend))
	} else {
		set(CondBackendsReady, false, "NoReadyEndpoints", fmt.Sprintf("no ready endpoint in the EndpointSlices of Service %s", backend))
	}
	ok, reason, msg := readiness(obs)
	set(CondReady, ok, reason, msg)
	return st
}

// readiness is the Ready condition: valid, exposed, with a ready backend
// and a live relay.
func readiness(obs *observation) (bool, string, string) {
	switch {
	case obs.invalid != "":
		return false, reasonInvalidSpec, obs.invalid
	case !obs.exposed.ok:
		return false, "NotExposed", obs.exposed.msg
	case obs.backends == 0:
		return false, "NoReadyBackends", "no backend is ready"
	case len(obs.relays) == 0:
		return false, "NoReadyRelays", "no pier-relay renews a Lease for this Relay"
	}
	return true, "Ready", fmt.Sprintf("%d relays, %d backends", len(obs.relays), obs.backends)
}

func readyOf(st *v1alpha1.RelayStatus) *metav1.Condition {
	return apimeta.FindStatusCondition(st.Conditions, CondReady)
}

func stateOf(obs *observation, st *v1alpha1.RelayStatus) string {
	switch {
	case obs.invalid != "":
		return relayInvalid
	case apimeta.IsStatusConditionTrue(st.Conditions, CondReady):
		return relayReady
	}
	return relayNotReady
}
