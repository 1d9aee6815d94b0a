package relayctl

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// Labels of the Services and EndpointSlices Pier owns for Relays.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedByPier       = "pier-controller"
	annotationCopiedKey = "pier.dev/relay-annotations"
)

// serviceRefused is an owned Service the controller may not or cannot
// write: a name taken by someone else's Service, or a spec the API server
// refuses (a node port in use). It ends in a condition and an event, not a
// hot retry loop.
type serviceRefused struct {
	reason string
	retry  bool
	err    error
}

func (e *serviceRefused) Error() string { return e.err.Error() }

// ensureService creates the owned Service or brings it back to the spec.
func (c *Controller) ensureService(ctx context.Context, relay *v1alpha1.Relay) (*corev1.Service, error) {
	want := desiredService(relay)
	var cur corev1.Service
	err := c.opts.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur)
	switch {
	case apierrors.IsNotFound(err):
		return c.createService(ctx, relay, want, "ServiceCreated")
	case err != nil:
		return nil, fmt.Errorf("get Service %s/%s: %w", want.Namespace, want.Name, err)
	}
	if !ownedByRelayName(&cur, relay.Name) {
		err := fmt.Errorf("Service %s exists and is not owned by this Relay; rename or delete it", want.Name)
		c.serviceEvent(relay, "ServiceConflict", err)
		return nil, &serviceRefused{reason: "ServiceConflict", err: err}
	}
	if primaryFamilyChanged(&cur, want) {
		if err := c.deleteOwned(ctx, relay, &cur); err != nil {
			return nil, err
		}
		return c.createService(ctx, relay, want, "ServiceRecreated")
	}
	next := cur.DeepCopy()
	changed := applyService(next, want)
	if len(changed) == 0 {
		return &cur, nil
	}
	if err := c.opts.Client.Update(ctx, next); err != nil {
		return nil, c.writeFailed(relay, want.Name, "update", err)
	}
	c.opts.Recorder.Eventf(relay, next, corev1.EventTypeNormal, "ServiceUpdated", "Update",
		"updated Service %s: %s", next.Name, strings.Join(changed, ", "))
	c.log.Info("updated relay Service", "relay", relay.Namespace+"/"+relay.Name, "service", next.Name, "changed", changed)
	return next, nil
}

func (c *Controller) createService(ctx context.Context, relay *v1alpha1.Relay, want *corev1.Service, reason string) (*corev1.Service, error) {
	if err := c.opts.Client.Create(ctx, want); err != nil {
		return nil, c.writeFailed(relay, want.Name, "create", err)
	}
	c.opts.Recorder.Eventf(relay, want, corev1.EventTypeNormal, reason, "Create", "created %s Service %s", want.Spec.Type, want.Name)
	c.log.Info("created relay Service", "relay", relay.Namespace+"/"+relay.Name, "service", want.Name, "type", want.Spec.Type)
	return want, nil
}

// writeFailed turns a refused write into a condition (invalid spec, such
// as a node port in use, or forbidden) and returns other errors for a
// retry with backoff.
func (c *Controller) writeFailed(relay *v1alpha1.Relay, name, verb string, err error) error {
	err = fmt.Errorf("%s Service %s: %w", verb, name, err)
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
		return err
	}
	c.opts.Metrics.errors.WithLabelValues(string(apierrors.ReasonForError(err))).Inc()
	c.serviceEvent(relay, "ServiceFailed", err)
	return &serviceRefused{reason: "ServiceFailed", retry: true, err: err}
}

func (c *Controller) serviceEvent(relay *v1alpha1.Relay, reason string, err error) {
	c.log.Warn("relay Service", "relay", relay.Namespace+"/"+relay.Name, "reason", reason, "err", err)
	c.opts.Recorder.Eventf(relay, nil, corev1.EventTypeWarning, reason, "Reconcile", "%v", err)
}

// deleteService deletes the Service owned by the Relay namespace/name and
// its EndpointSlices, if any: the Relay is gone (relay nil) or no longer
// needs one. No garbage collector is assumed to run.
func (c *Controller) deleteService(ctx context.Context, namespace, name string, relay *v1alpha1.Relay) error {
	if err := c.deleteSlices(ctx, namespace, config.RelayServiceName(name)); err != nil {
		return err
	}
	var svc corev1.Service
	key := client.ObjectKey{Namespace: namespace, Name: config.RelayServiceName(name)}
	if err := c.opts.Client.Get(ctx, key, &svc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedByRelayName(&svc, name) {
		return nil
	}
	return c.deleteOwned(ctx, relay, &svc)
}

func (c *Controller) deleteOwned(ctx context.Context, relay *v1alpha1.Relay, svc *corev1.Service) error {
	err := c.opts.Client.Delete(ctx, svc, client.Preconditions{UID: &svc.UID})
	if err := client.IgnoreNotFound(err); err != nil {
		return fmt.Errorf("delete Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	c.log.Info("deleted relay Service", "service", svc.Namespace+"/"+svc.Name)
	if relay != nil {
		c.opts.Recorder.Eventf(relay, nil, corev1.EventTypeNormal, "ServiceDeleted", "Delete",
			"deleted Service %s (exposure %s)", svc.Name, config.RelayExposure(&relay.Spec))
	}
	return nil
}

// currentService reads the owned Service without changing it.
func (c *Controller) currentService(ctx context.Context, relay *v1alpha1.Relay) (*corev1.Service, exposedCond) {
	exp := config.RelayExposure(&relay.Spec)
	if !config.NeedsService(exp) {
		return nil, exposedCond{ok: true, reason: "HostNetwork", msg: "relays listen on the nodes' own addresses"}
	}
	var svc corev1.Service
	err := c.opts.Client.Get(ctx, client.ObjectKey{Namespace: relay.Namespace, Name: config.RelayServiceName(relay.Name)}, &svc)
	if err != nil || !ownedByRelayName(&svc, relay.Name) {
		return nil, exposedCond{reason: "NoService", msg: "no Service: the Relay is invalid"}
	}
	return &svc, exposedFor(exp, &svc)
}

// ownedByRelayName reports whether svc's controller is a Relay of that
// name (of any UID: a Relay deleted and created again takes its Service
// back).
func ownedByRelayName(svc *corev1.Service, name string) bool {
	ref := metav1.GetControllerOfNoCopy(svc)
	return ref != nil && ref.Kind == config.KindRelay && ref.Name == name &&
		strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/")
}

// desiredService is the Service Pier owns for relay.
func desiredService(relay *v1alpha1.Relay) *corev1.Service {
	typ := corev1.ServiceTypeLoadBalancer
	if config.RelayExposure(&relay.Spec) == v1alpha1.ExposeNodePort {
		typ = corev1.ServiceTypeNodePort
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: relay.Namespace,
			Name:      config.RelayServiceName(relay.Name),
			Labels:    map[string]string{LabelManagedBy: ManagedByPier, v1alpha1.LabelRelayName: relay.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(relay,
				v1alpha1.GroupVersion.WithKind(config.KindRelay))},
		},
		Spec: corev1.ServiceSpec{
			Type: typ,
			// No selector: the relay pods are in Pier's namespace; the
			// controller writes the EndpointSlices (endpoints.go),
			// one endpoint per node with a live relay. Local: only those
			// nodes announce the address (speakers honour it), and
			// kube-proxy keeps the client's address, which the relay hashes
			// and passes on in PROXY headers.
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicySingleStack),
			IPFamilies:            slices.Clone(relay.Spec.Exposure.IPFamilies),
		},
	}
	if p := relay.Spec.Exposure.IPFamilyPolicy; p != nil {
		svc.Spec.IPFamilyPolicy = ptr.To(*p)
	}
	if typ == corev1.ServiceTypeLoadBalancer {
		// Always Pier's class: the Service is served by Pier whether or not
		// the controller serves class-less Services, and never by another
		// load balancer implementation that does.
		svc.Spec.LoadBalancerClass = ptr.To(v1alpha1.LoadBalancerClass)
	}
	for _, l := range relay.Spec.ListenersOrDefault() {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: l.Name, Protocol: l.Protocol, Port: l.Port,
			// The relay pods listen on the listener's own port.
			TargetPort: intstr.FromInt32(l.Port),
			NodePort:   l.NodePort,
		})
	}
	setCopiedAnnotations(svc, relay.Spec.Exposure.ServiceAnnotations)
	return svc
}

// setCopiedAnnotations sets the exposure's annotations and records their
// keys, so that a key removed from the Relay is removed from the Service
// while annotations others write (the allocated pool) stay.
func setCopiedAnnotations(svc *corev1.Service, in map[string]string) {
	if len(in) == 0 {
		return
	}
	svc.Annotations = maps.Clone(in)
	svc.Annotations[annotationCopiedKey] = strings.Join(sortedKeys(in), ",")
}

// applyService makes cur carry want's managed fields and names the ones
// that changed; fields the API server fills in (cluster IPs, allocated
// node ports, families it defaulted) are kept.
func applyService(cur, want *corev1.Service) []string {
	var changed []string
	set := func(name string, differ bool, apply func()) {
		if differ {
			apply()
			changed = append(changed, name)
		}
	}
	set("owner", !equality.Semantic.DeepEqual(metav1.GetControllerOfNoCopy(cur), metav1.GetControllerOfNoCopy(want)), func() {
		cur.OwnerReferences = append(slices.DeleteFunc(cur.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.Controller != nil && *r.Controller
		}), want.OwnerReferences...)
	})
	set("labels", !containsAll(cur.Labels, want.Labels), func() { cur.Labels = mergeMaps(cur.Labels, want.Labels) })
	annotations := wantAnnotations(cur.Annotations, want.Annotations)
	set("annotations", !maps.Equal(cur.Annotations, annotations), func() { cur.Annotations = annotations })
	set("type", cur.Spec.Type != want.Spec.Type, func() { cur.Spec.Type = want.Spec.Type })
	set("loadBalancerClass", !ptr.Equal(cur.Spec.LoadBalancerClass, want.Spec.LoadBalancerClass), func() {
		cur.Spec.LoadBalancerClass = want.Spec.LoadBalancerClass
	})
	ports := wantPorts(cur.Spec.Ports, want.Spec.Ports)
	set("ports", !equality.Semantic.DeepEqual(cur.Spec.Ports, ports), func() { cur.Spec.Ports = ports })
	set("selector", !maps.Equal(cur.Spec.Selector, want.Spec.Selector), func() { cur.Spec.Selector = want.Spec.Selector })
	set("externalTrafficPolicy", cur.Spec.ExternalTrafficPolicy != want.Spec.ExternalTrafficPolicy, func() {
		cur.Spec.ExternalTrafficPolicy = want.Spec.ExternalTrafficPolicy
	})
	set("ipFamilyPolicy", !ptr.Equal(cur.Spec.IPFamilyPolicy, want.Spec.IPFamilyPolicy), func() {
		cur.Spec.IPFamilyPolicy = want.Spec.IPFamilyPolicy
	})
	families := wantFamilies(cur.Spec.IPFamilies, want.Spec)
	set("ipFamilies", !slices.Equal(cur.Spec.IPFamilies, families), func() { cur.Spec.IPFamilies = families })
	return changed
}

// wantAnnotations is cur with the previously copied keys replaced by want's.
func wantAnnotations(cur, want map[string]string) map[string]string {
	out := maps.Clone(cur)
	if prev := cur[annotationCopiedKey]; prev != "" {
		for _, k := range strings.Split(prev, ",") {
			delete(out, k)
		}
		delete(out, annotationCopiedKey)
	}
	if len(want) > 0 && out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// wantPorts is want with the node ports the API server allocated kept
// where want leaves them to it.
func wantPorts(cur, want []corev1.ServicePort) []corev1.ServicePort {
	out := slices.Clone(want)
	for i := range out {
		if out[i].NodePort != 0 {
			continue
		}
		for _, c := range cur {
			if c.Name == out[i].Name && c.Protocol == out[i].Protocol {
				out[i].NodePort = c.NodePort
			}
		}
	}
	return out
}

// wantFamilies is the Relay's families when it names them; otherwise what
// the API server chose, cut to the primary family for SingleStack.
func wantFamilies(cur []corev1.IPFamily, want corev1.ServiceSpec) []corev1.IPFamily {
	switch {
	case len(want.IPFamilies) > 0:
		return want.IPFamilies
	case *want.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack && len(cur) > 1:
		return cur[:1]
	}
	return cur
}

// primaryFamilyChanged reports a change of the first family, which the API
// server does not allow on an existing Service.
func primaryFamilyChanged(cur, want *corev1.Service) bool {
	return len(want.Spec.IPFamilies) > 0 && len(cur.Spec.IPFamilies) > 0 && cur.Spec.IPFamilies[0] != want.Spec.IPFamilies[0]
}

func containsAll(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func mergeMaps(dst, src map[string]string) map[string]string {
	out := maps.Clone(dst)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, src)
	return out
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
