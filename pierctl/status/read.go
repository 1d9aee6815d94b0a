package status

import (
	"context"
	"errors"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/internal/apicache"
)

// ErrNotInstalled means the API server serves no pier.dev/v1alpha1 API:
// Pier's CRDs are not installed.
var ErrNotInstalled = errors.New("Pier's CRDs are not installed (the API server serves no pier.dev/v1alpha1)")

// Read lists what Build needs: the pools, ServiceL2Status,
// BGPSessionStatus, BGPAnnouncementStatus and ConfigurationStatus objects
// in namespace, Relays and Services in every
// namespace, and Pier's workloads. Kinds whose CRD is missing are named in
// Objects.Missing; with none of Pier's CRDs it returns everything it read
// and ErrNotInstalled.
func Read(ctx context.Context, cfg *rest.Config, namespace string) (Objects, error) {
	o := Objects{Namespace: namespace}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return o, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return o, err
	}
	lists := []struct {
		resource, namespace string
		read                func(*unstructured.UnstructuredList) error
	}{
		{"ipaddresspools", namespace, func(l *unstructured.UnstructuredList) error { return into(l, &o.Pools) }},
		{"servicel2statuses", namespace, func(l *unstructured.UnstructuredList) error { return into(l, &o.L2) }},
		{"bgpsessionstatuses", namespace, func(l *unstructured.UnstructuredList) error { return into(l, &o.Sessions) }},
		{"bgpannouncementstatuses", namespace, func(l *unstructured.UnstructuredList) error { return into(l, &o.BGPAnnouncements) }},
		{"configurationstatuses", namespace, func(l *unstructured.UnstructuredList) error { return into(l, &o.Configurations) }},
		{"relays", metav1.NamespaceAll, func(l *unstructured.UnstructuredList) error { return into(l, &o.Relays) }},
	}
	resources := make([]string, len(lists))
	for i, l := range lists {
		resources[i] = l.resource
	}
	if o.Missing, err = apicache.MissingCRDs(kube.Discovery(), v1alpha1.GroupVersion, resources...); err != nil {
		return o, err
	}
	for _, l := range lists {
		if slices.Contains(o.Missing, l.resource+"."+v1alpha1.GroupVersion.Group) {
			continue
		}
		list, err := dyn.Resource(v1alpha1.GroupVersion.WithResource(l.resource)).Namespace(l.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return o, fmt.Errorf("list %s: %w", l.resource, err)
		}
		if err := l.read(list); err != nil {
			return o, fmt.Errorf("read %s: %w", l.resource, err)
		}
	}
	svcs, err := kube.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return o, fmt.Errorf("list services: %w", err)
	}
	o.Services = svcs.Items
	if err := readWorkloads(ctx, kube, &o); err != nil {
		return o, err
	}
	if len(o.Missing) == len(lists) {
		return o, ErrNotInstalled
	}
	return o, nil
}

// readWorkloads lists Pier's Deployments, DaemonSets and Pods in
// o.Namespace and the Warning events about Pods there.
func readWorkloads(ctx context.Context, kube kubernetes.Interface, o *Objects) error {
	pier := metav1.ListOptions{LabelSelector: Selector}
	deps, err := kube.AppsV1().Deployments(o.Namespace).List(ctx, pier)
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	dss, err := kube.AppsV1().DaemonSets(o.Namespace).List(ctx, pier)
	if err != nil {
		return fmt.Errorf("list daemonsets: %w", err)
	}
	pods, err := kube.CoreV1().Pods(o.Namespace).List(ctx, pier)
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	evs, err := kube.CoreV1().Events(o.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,type=Warning"})
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	o.Deployments, o.DaemonSets, o.Pods, o.Events = deps.Items, dss.Items, pods.Items, evs.Items
	return nil
}

// into converts the items of l into *out.
func into[T any](l *unstructured.UnstructuredList, out *[]T) error {
	for _, it := range l.Items {
		var v T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(it.Object, &v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return nil
}
