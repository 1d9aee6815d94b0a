package apicache

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// ErrCRDsMissing means the API server answers but does not serve some of
// Pier's resources: their CRDs were not applied, or not before Pier.
var ErrCRDsMissing = errors.New("Pier's CRDs are not installed (apply them before Pier: helm installs them unless --skip-crds; kubectl apply -k manifests/base includes them)")

// MissingCRDs returns the resources of want (plural names) that the API
// server does not serve in gv, as "ipaddresspools.pier.dev", sorted as
// want is. Any other failure (an unreachable API server) is returned as
// an error, and says nothing about the CRDs.
func MissingCRDs(disc discovery.ServerResourcesInterface, gv schema.GroupVersion, want ...string) ([]string, error) {
	served := map[string]bool{}
	rl, err := disc.ServerResourcesForGroupVersion(gv.String())
	switch {
	case apierrors.IsNotFound(err): // not one resource of the group
	case err != nil:
		return nil, fmt.Errorf("discover %s: %w", gv, err)
	default:
		for _, r := range rl.APIResources {
			served[r.Name] = true
		}
	}
	var missing []string
	for _, w := range want {
		if !served[w] {
			missing = append(missing, w+"."+gv.Group)
		}
	}
	return missing, nil
}

// CRDs is a Watch check that cfg's API server serves want in gv.
func CRDs(cfg *rest.Config, gv schema.GroupVersion, want ...string) (func() error, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return func() error { return RequireCRDs(disc, gv, want...) }, nil
}

// RequireCRDs returns an error wrapping ErrCRDsMissing that names every
// resource of want the API server does not serve, nil when all are
// served, or the discovery error itself.
func RequireCRDs(disc discovery.ServerResourcesInterface, gv schema.GroupVersion, want ...string) error {
	missing, err := MissingCRDs(disc, gv, want...)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not served", ErrCRDsMissing, strings.Join(missing, ", "))
	}
	return nil
}
