package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// ErrNoMetalLB means the cluster has neither MetalLB's CRDs nor its legacy
// ConfigMap.
var ErrNoMetalLB = errors.New("no MetalLB configuration found")

// legacyConfigMap is the ConfigMap MetalLB before v0.13 read.
const legacyConfigMap = "config"

// clusterKinds are the resources read from a cluster, by preferred
// version; BGPPeer falls back to v1beta1 on old MetalLB releases.
var clusterKinds = []struct {
	resource string
	versions []string
}{
	{"communities", []string{"v1beta1"}},
	{"ipaddresspools", []string{"v1beta1"}},
	{"l2advertisements", []string{"v1beta1"}},
	{"bgppeers", []string{"v1beta2", "v1beta1"}},
	{"bgpadvertisements", []string{"v1beta1"}},
	{"bfdprofiles", []string{"v1beta1"}},
}

// FromCluster reads MetalLB's objects in namespace through the dynamic
// client, its legacy ConfigMap (namespace/config) if any, and the Services
// carrying MetalLB annotations.
func FromCluster(ctx context.Context, cfg *rest.Config, namespace string) ([]unstructured.Unstructured, error) {
	served, err := servedVersions(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var out []unstructured.Unstructured
	for _, k := range clusterKinds {
		i := slices.IndexFunc(k.versions, func(v string) bool { return served[v+"/"+k.resource] })
		if i < 0 {
			continue
		}
		gvr := schema.GroupVersionResource{Group: Group, Version: k.versions[i], Resource: k.resource}
		list, err := dyn.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", gvr, err)
		}
		out = append(out, list.Items...)
	}
	cm, err := legacy(ctx, dyn, namespace)
	if err != nil {
		return nil, err
	}
	if len(served) == 0 && cm == nil {
		return nil, fmt.Errorf("%w: the API server serves no %s API and there is no ConfigMap %s/%s", ErrNoMetalLB, Group, namespace, legacyConfigMap)
	}
	if cm != nil {
		out = append(out, *cm)
	}
	svcs, err := annotatedServices(ctx, dyn)
	return append(out, svcs...), err
}

// servedVersions returns "version/resource" for each metallb.io resource
// the API server serves.
func servedVersions(cfg *rest.Config) (map[string]bool, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	groups, err := disc.ServerGroups()
	if err != nil {
		return nil, fmt.Errorf("discover API groups: %w", err)
	}
	out := map[string]bool{}
	for _, g := range groups.Groups {
		if g.Name != Group {
			continue
		}
		for _, v := range g.Versions {
			rl, err := disc.ServerResourcesForGroupVersion(v.GroupVersion)
			if err != nil {
				return nil, fmt.Errorf("discover %s: %w", v.GroupVersion, err)
			}
			for _, r := range rl.APIResources {
				out[v.Version+"/"+r.Name] = true
			}
		}
	}
	return out, nil
}

func legacy(ctx context.Context, dyn dynamic.Interface, namespace string) (*unstructured.Unstructured, error) {
	cm, err := dyn.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace(namespace).Get(ctx, legacyConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get ConfigMap %s/%s: %w", namespace, legacyConfigMap, err)
	}
	if _, found, _ := unstructured.NestedString(cm.Object, "data", "config"); !found {
		return nil, nil
	}
	return cm, nil
}

// annotatedServices lists the Services with a MetalLB annotation.
func annotatedServices(ctx context.Context, dyn dynamic.Interface) ([]unstructured.Unstructured, error) {
	list, err := dyn.Resource(corev1.SchemeGroupVersion.WithResource("services")).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var out []unstructured.Unstructured
	for _, s := range list.Items {
		for k := range s.GetAnnotations() {
			if _, ok := trimPrefixes(k); ok {
				s.SetAPIVersion("v1")
				s.SetKind("Service")
				out = append(out, s)
				break
			}
		}
	}
	return out, nil
}
