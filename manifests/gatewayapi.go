package manifests

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// GatewayAPIVersion is the release of sigs.k8s.io/gateway-api whose CRDs
// gateway-api/ holds: the module version in go.mod (a test checks both).
const GatewayAPIVersion = "v1.6.3"

// Channels of the Gateway API CRDs. Experimental is a superset of
// standard: the same CRDs with more fields, and a few more kinds.
const (
	GatewayAPIStandard     = "standard"
	GatewayAPIExperimental = "experimental"
)

// gatewayAPI holds the Gateway API release's config/crd/<channel>/*.yaml,
// copied unchanged from the module (kustomization.yaml left out).
//
//go:embed gateway-api/standard/*.yaml gateway-api/experimental/*.yaml
var gatewayAPI embed.FS

// GatewayAPIFiles returns the channel's files by name, as the release
// ships them (CRDs and the ValidatingAdmissionPolicy that refuses older
// CRD versions over newer ones).
func GatewayAPIFiles(channel string) (map[string][]byte, error) {
	if channel != GatewayAPIStandard && channel != GatewayAPIExperimental {
		return nil, fmt.Errorf("gateway API channel %q: want %s or %s", channel, GatewayAPIStandard, GatewayAPIExperimental)
	}
	files, err := fs.Glob(gatewayAPI, "gateway-api/"+channel+"/*.yaml")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range files {
		data, err := gatewayAPI.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[path.Base(f)] = data
	}
	return out, nil
}

// GatewayAPICRDs returns the channel's CustomResourceDefinitions.
func GatewayAPICRDs(channel string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := GatewayAPIFiles(channel)
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for name, data := range files {
		for doc := range bytes.SplitSeq(data, []byte("\n---\n")) {
			var head struct{ Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if head.Kind != "CustomResourceDefinition" {
				continue
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.UnmarshalStrict(doc, crd); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, crd)
		}
	}
	return out, nil
}

// InstallGatewayAPI creates or updates the channel's Gateway API CRDs and
// waits until the API server serves them.
func InstallGatewayAPI(ctx context.Context, cfg *rest.Config, channel string) error {
	crds, err := GatewayAPICRDs(channel)
	if err != nil {
		return err
	}
	cs, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return installAll(ctx, cs.ApiextensionsV1().CustomResourceDefinitions(), crds)
}
