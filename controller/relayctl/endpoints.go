package relayctl

// The owned Service has no selector: the relay pods run in Pier's
// namespace, and a selector only picks pods of the Service's own namespace
// (the Relay's). The controller writes the Service's EndpointSlices
// instead: one endpoint per node whose relay holds a live Lease for the
// Relay, at the node's InternalIP (relays use the host network) with the
// node name, on the listener ports. kube-proxy then forwards the
// Service's address to live relays, and a speaker that honours
// externalTrafficPolicy Local sees which nodes have one.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// SliceManager is the endpointslice.kubernetes.io/managed-by value of the
// EndpointSlices Pier writes for owned Services.
const SliceManager = "relay-controller.pier.dev"

// relayNode is a node whose relay serves the Relay.
type relayNode struct {
	name  string
	addrs []netip.Addr // InternalIPs
}

// relayNodes reads the InternalIPs of the named nodes; unknown nodes are
// skipped.
func (c *Controller) relayNodes(ctx context.Context, names []string) ([]relayNode, error) {
	var out []relayNode
	for _, name := range names {
		var node corev1.Node
		if err := c.opts.Client.Get(ctx, client.ObjectKey{Name: name}, &node); err != nil {
			if client.IgnoreNotFound(err) == nil {
				continue
			}
			return nil, fmt.Errorf("get node %s: %w", name, err)
		}
		n := relayNode{name: name}
		for _, a := range node.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
				n.addrs = append(n.addrs, ip.Unmap())
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// nodeAddrs lists the nodes' addresses, IPv4 first, each once.
func nodeAddrs(nodes []relayNode) []string {
	var addrs []netip.Addr
	for _, n := range nodes {
		addrs = append(addrs, n.addrs...)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	var out []string
	for _, a := range slices.Compact(addrs) {
		out = append(out, a.String())
	}
	return out
}

// desiredSlices are the EndpointSlices of svc, one per family of the
// Service, listing the relay nodes.
func desiredSlices(relay *v1alpha1.Relay, svc *corev1.Service, nodes []relayNode) []*discoveryv1.EndpointSlice {
	var ports []discoveryv1.EndpointPort
	for _, l := range relay.Spec.ListenersOrDefault() {
		ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(l.Name), Protocol: ptr.To(l.Protocol), Port: ptr.To(l.Port)})
	}
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	var out []*discoveryv1.EndpointSlice
	for _, f := range families {
		typ, is4, suffix := discoveryv1.AddressTypeIPv4, true, "-ipv4"
		if f == corev1.IPv6Protocol {
			typ, is4, suffix = discoveryv1.AddressTypeIPv6, false, "-ipv6"
		}
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: svc.Namespace,
				Name:      svc.Name + suffix,
				Labels: map[string]string{
					discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: SliceManager,
					LabelManagedBy: ManagedByPier, v1alpha1.LabelRelayName: relay.Name,
				},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(relay, v1alpha1.GroupVersion.WithKind(config.KindRelay))},
			},
			AddressType: typ,
			Ports:       ports,
		}
		for _, n := range nodes {
			for _, a := range n.addrs {
				if a.Is4() == is4 {
					es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
						Addresses: []string{a.String()}, NodeName: ptr.To(n.name),
						Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
					})
				}
			}
		}
		out = append(out, es)
	}
	return out
}

// syncSlices writes the owned Service's EndpointSlices and deletes stale
// ones (another family, an older Service).
func (c *Controller) syncSlices(ctx context.Context, relay *v1alpha1.Relay, svc *corev1.Service, nodes []relayNode) error {
	have, err := c.ownedSlices(ctx, relay.Namespace, svc.Name)
	if err != nil {
		return err
	}
	want := desiredSlices(relay, svc, nodes)
	for _, es := range want {
		i := slices.IndexFunc(have, func(h discoveryv1.EndpointSlice) bool { return h.Name == es.Name })
		if i < 0 {
			if err := c.opts.Client.Create(ctx, es); err != nil {
				return fmt.Errorf("create EndpointSlice %s/%s: %w", es.Namespace, es.Name, err)
			}
			continue
		}
		cur := &have[i]
		if cur.AddressType == es.AddressType && equality.Semantic.DeepEqual(cur.Endpoints, es.Endpoints) &&
			equality.Semantic.DeepEqual(cur.Ports, es.Ports) && containsAll(cur.Labels, es.Labels) &&
			equality.Semantic.DeepEqual(cur.OwnerReferences, es.OwnerReferences) {
			continue
		}
		next := cur.DeepCopy()
		next.Endpoints, next.Ports, next.OwnerReferences = es.Endpoints, es.Ports, es.OwnerReferences
		next.Labels = mergeMaps(next.Labels, es.Labels)
		if err := c.opts.Client.Update(ctx, next); err != nil {
			return fmt.Errorf("update EndpointSlice %s/%s: %w", es.Namespace, es.Name, err)
		}
	}
	for i := range have {
		if !slices.ContainsFunc(want, func(w *discoveryv1.EndpointSlice) bool { return w.Name == have[i].Name }) {
			if err := c.deleteSlice(ctx, &have[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteSlices deletes the EndpointSlices Pier wrote for the Service.
func (c *Controller) deleteSlices(ctx context.Context, namespace, service string) error {
	have, err := c.ownedSlices(ctx, namespace, service)
	if err != nil {
		return err
	}
	for i := range have {
		if err := c.deleteSlice(ctx, &have[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) ownedSlices(ctx context.Context, namespace, service string) ([]discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{
		discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: SliceManager,
	}); err != nil {
		return nil, fmt.Errorf("list EndpointSlices of %s/%s: %w", namespace, service, err)
	}
	return list.Items, nil
}

func (c *Controller) deleteSlice(ctx context.Context, es *discoveryv1.EndpointSlice) error {
	if err := client.IgnoreNotFound(c.opts.Client.Delete(ctx, es)); err != nil {
		return fmt.Errorf("delete EndpointSlice %s/%s: %w", es.Namespace, es.Name, err)
	}
	return nil
}
