package gatewayctl

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// ownedByGateway reports whether svc's controller is a Gateway of that
// name (of any UID: a Gateway deleted and created again takes its Service
// back).
func ownedByGateway(obj metav1.Object, name string) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.Kind == "Gateway" && ref.Name == name && strings.HasPrefix(ref.APIVersion, gwv1.GroupName+"/")
}

// ensureService creates the owned Service or brings its managed fields
// back to want. A Service the controller may not or cannot write is a
// problem for the status, not an error to retry at once.
func (c *Controller) ensureService(ctx context.Context, gw *gwv1.Gateway, want *corev1.Service) (*corev1.Service, string, error) {
	var cur corev1.Service
	err := c.opts.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.opts.Client.Create(ctx, want); err != nil {
			return c.refused(gw, "create", want.Name, err)
		}
		c.opts.Recorder.Eventf(gw, want, corev1.EventTypeNormal, "ServiceCreated", "Create", "created Service %s", want.Name)
		c.log.Info("created gateway Service", "gateway", gw.Namespace+"/"+gw.Name, "service", want.Name)
		return want, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("get Service %s/%s: %w", want.Namespace, want.Name, err)
	}
	if !ownedByGateway(&cur, gw.Name) {
		msg := fmt.Sprintf("Service %s exists and is not owned by this Gateway; rename or delete it", want.Name)
		c.opts.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, "ServiceConflict", "Reconcile", "%s", msg)
		return nil, msg, nil
	}
	if headless(&cur) != headless(want) {
		// The data path changed: a cluster IP cannot be taken away or
		// given to a headless Service.
		if err := client.IgnoreNotFound(c.opts.Client.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID})); err != nil {
			return nil, "", fmt.Errorf("delete Service %s/%s: %w", cur.Namespace, cur.Name, err)
		}
		if err := c.opts.Client.Create(ctx, want); err != nil {
			return c.refused(gw, "create", want.Name, err)
		}
		c.opts.Recorder.Eventf(gw, want, corev1.EventTypeNormal, "ServiceRecreated", "Create", "created Service %s for the new data path", want.Name)
		return want, "", nil
	}
	next := cur.DeepCopy()
	if !applyService(next, want) {
		return &cur, "", nil
	}
	if err := c.opts.Client.Update(ctx, next); err != nil {
		return c.refused(gw, "update", want.Name, err)
	}
	return next, "", nil
}

func headless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

// refused turns a write the API server refused for its content into a
// problem for the status; other errors are retried.
func (c *Controller) refused(gw *gwv1.Gateway, verb, name string, err error) (*corev1.Service, string, error) {
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
		return nil, "", fmt.Errorf("%s Service %s/%s: %w", verb, gw.Namespace, name, err)
	}
	msg := fmt.Sprintf("%s Service %s: %v", verb, name, err)
	c.opts.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, "ServiceFailed", "Reconcile", "%s", msg)
	return nil, msg, nil
}

// applyService makes cur carry want's managed fields and reports a
// change. Fields the API server fills in (cluster IPs, node ports,
// families it chose) and annotations others write stay.
func applyService(cur, want *corev1.Service) bool {
	before := cur.DeepCopy()
	cur.OwnerReferences = want.OwnerReferences
	cur.Labels = merged(cur.Labels, want.Labels)
	cur.Annotations = managedAnnotations(cur.Annotations, want.Annotations)
	cur.Spec.Type, cur.Spec.LoadBalancerClass, cur.Spec.Selector = want.Spec.Type, want.Spec.LoadBalancerClass, nil
	cur.Spec.IPFamilyPolicy = want.Spec.IPFamilyPolicy
	if len(want.Spec.IPFamilies) > 0 {
		cur.Spec.IPFamilies = want.Spec.IPFamilies
	} else if len(cur.Spec.IPFamilies) > 1 {
		cur.Spec.IPFamilies = cur.Spec.IPFamilies[:1]
	}
	ports := slices.Clone(want.Spec.Ports)
	for i := range ports {
		for _, p := range cur.Spec.Ports {
			if p.Name == ports[i].Name {
				ports[i].NodePort, ports[i].TargetPort = p.NodePort, p.TargetPort
			}
		}
	}
	cur.Spec.Ports = ports
	return !equality.Semantic.DeepEqual(before, cur)
}

// managedAnnotations is cur with the keys set earlier from the Gateway
// replaced by want's.
func managedAnnotations(cur, want map[string]string) map[string]string {
	out := maps.Clone(cur)
	if prev, ok := cur[annotationCopied]; ok {
		for k := range strings.SplitSeq(prev, ",") {
			delete(out, k)
		}
		delete(out, annotationCopied)
	}
	if len(want) == 0 {
		return out
	}
	return merged(out, want)
}

func merged(dst, src map[string]string) map[string]string {
	out := maps.Clone(dst)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, src)
	return out
}

// deleteService deletes the Service owned by Gateway namespace/name and
// its EndpointSlices. No garbage collector is assumed to run.
func (c *Controller) deleteService(ctx context.Context, namespace, name string) error {
	if err := c.syncSlices(ctx, namespace, ServiceName(name), nil); err != nil {
		return err
	}
	var svc corev1.Service
	if err := c.opts.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ServiceName(name)}, &svc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedByGateway(&svc, name) {
		return nil
	}
	if err := client.IgnoreNotFound(c.opts.Client.Delete(ctx, &svc, client.Preconditions{UID: &svc.UID})); err != nil {
		return fmt.Errorf("delete Service %s/%s: %w", namespace, svc.Name, err)
	}
	c.log.Info("deleted gateway Service", "service", namespace+"/"+svc.Name)
	return nil
}

// syncSlices makes the Service's EndpointSlices written by this
// controller want: created, updated, and the others deleted.
func (c *Controller) syncSlices(ctx context.Context, namespace, service string, want []*discoveryv1.EndpointSlice) error {
	var list discoveryv1.EndpointSliceList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{
		discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: SliceManager,
	}); err != nil {
		return fmt.Errorf("list EndpointSlices of %s/%s: %w", namespace, service, err)
	}
	have := map[string]*discoveryv1.EndpointSlice{}
	for i := range list.Items {
		have[list.Items[i].Name] = &list.Items[i]
	}
	for _, es := range want {
		cur, ok := have[es.Name]
		delete(have, es.Name)
		if !ok {
			if err := c.opts.Client.Create(ctx, es); err != nil {
				return fmt.Errorf("create EndpointSlice %s/%s: %w", es.Namespace, es.Name, err)
			}
			continue
		}
		next := cur.DeepCopy()
		next.AddressType, next.Endpoints, next.Ports, next.OwnerReferences = es.AddressType, es.Endpoints, es.Ports, es.OwnerReferences
		next.Labels = merged(next.Labels, es.Labels)
		if equality.Semantic.DeepEqual(cur, next) {
			continue
		}
		if err := c.opts.Client.Update(ctx, next); err != nil {
			return fmt.Errorf("update EndpointSlice %s/%s: %w", es.Namespace, es.Name, err)
		}
	}
	for _, es := range have {
		if err := client.IgnoreNotFound(c.opts.Client.Delete(ctx, es)); err != nil {
			return fmt.Errorf("delete EndpointSlice %s/%s: %w", es.Namespace, es.Name, err)
		}
	}
	return nil
}

// ensureRelay creates the owned Relay or brings it back to want. A Relay
// of that name owned by someone else is a problem for the status.
func (c *Controller) ensureRelay(ctx context.Context, gw *gwv1.Gateway, want *v1alpha1.Relay) (*v1alpha1.Relay, string, error) {
	var cur v1alpha1.Relay
	err := c.opts.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.opts.Client.Create(ctx, want); err != nil {
			return c.relayRefused(gw, "create", want.Name, err)
		}
		c.opts.Recorder.Eventf(gw, want, corev1.EventTypeNormal, "RelayCreated", "Create", "created Relay %s", want.Name)
		c.log.Info("created gateway Relay", "gateway", gw.Namespace+"/"+gw.Name, "relay", want.Name)
		return want, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("get Relay %s/%s: %w", want.Namespace, want.Name, err)
	}
	if !ownedByGateway(&cur, gw.Name) {
		msg := fmt.Sprintf("Relay %s exists and is not owned by this Gateway; rename or delete it", want.Name)
		c.opts.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, "RelayConflict", "Reconcile", "%s", msg)
		return nil, msg, nil
	}
	next := cur.DeepCopy()
	if !applyRelay(next, want) {
		return &cur, "", nil
	}
	if err := c.opts.Client.Update(ctx, next); err != nil {
		return c.relayRefused(gw, "update", want.Name, err)
	}
	return next, "", nil
}

// relayRefused turns a Relay write refused for its content (the webhook
// applies config.ParseRelay) into a problem for the status.
func (c *Controller) relayRefused(gw *gwv1.Gateway, verb, name string, err error) (*v1alpha1.Relay, string, error) {
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) {
		return nil, "", fmt.Errorf("%s Relay %s/%s: %w", verb, gw.Namespace, name, err)
	}
	msg := fmt.Sprintf("%s Relay %s: %v", verb, name, err)
	c.opts.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, "RelayFailed", "Reconcile", "%s", msg)
	return nil, msg, nil
}

// deleteRelay deletes the Relay owned by Gateway namespace/name, if any.
func (c *Controller) deleteRelay(ctx context.Context, namespace, name string) error {
	var r v1alpha1.Relay
	if err := c.opts.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: RelayName(name)}, &r); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedByGateway(&r, name) {
		return nil
	}
	if err := client.IgnoreNotFound(c.opts.Client.Delete(ctx, &r, client.Preconditions{UID: &r.UID})); err != nil {
		return fmt.Errorf("delete Relay %s/%s: %w", namespace, r.Name, err)
	}
	c.log.Info("deleted gateway Relay", "relay", namespace+"/"+r.Name)
	return nil
}
