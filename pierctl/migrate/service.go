package migrate

import (
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// serviceAnnotations maps MetalLB's Service annotations (after the
// metallb.universe.tf/ or metallb.io/ prefix) to Pier's.
var serviceAnnotations = map[string]string{
	"address-pool":    v1alpha1.AnnotationAddressPool,
	"loadBalancerIPs": v1alpha1.AnnotationLoadBalancerIPs,
	"allow-shared-ip": v1alpha1.AnnotationAllowSharedIP,
}

var metallbPrefixes = []string{"metallb.universe.tf/", "metallb.io/"}

// service reports the MetalLB annotations of a Service with Pier's
// equivalent; Services are not rewritten.
func (c *converter) service(u *unstructured.Unstructured, r reporter) {
	ann := u.GetAnnotations()
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		short, ok := trimPrefixes(k)
		if !ok {
			continue
		}
		field := "metadata.annotations[" + k + "]"
		switch pier, known := serviceAnnotations[short]; {
		case known && ann[pier] == ann[k]:
		case known:
			r.note(field, "set %s: %q for Pier", pier, ann[k])
		case short == "ip-allocated-from-pool":
		default:
			r.drop(field, "no Pier equivalent")
		}
	}
}

func trimPrefixes(k string) (string, bool) {
	for _, p := range metallbPrefixes {
		if s, ok := strings.CutPrefix(k, p); ok {
			return s, true
		}
	}
	return "", false
}
