package webhook

import (
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// isRelay reports whether the request is for a Relay.
func isRelay(req *admissionv1.AdmissionRequest) bool {
	return req.Kind.Group == v1alpha1.GroupVersion.Group && req.Kind.Version == v1alpha1.GroupVersion.Version &&
		req.Kind.Kind == config.KindRelay
}

// reviewRelay checks a Relay on its own with config.ParseRelay: Relays
// live in the applications' namespaces, not in Pier's, and refer to none
// of the configuration objects, so nothing is listed.
func reviewRelay(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	var r v1alpha1.Relay
	if err := json.Unmarshal(req.Object.Raw, &r); err != nil {
		return nil, fmt.Errorf("%w: decode Relay: %w", errBadRequest, err)
	}
	if r.Name == "" {
		r.Name = req.Name
	}
	r.Namespace = req.Namespace
	_, problems := config.ParseRelay(&r)
	if len(problems) == 0 {
		return &admissionv1.AdmissionResponse{Allowed: true}, nil
	}
	return deny(&object{kind: config.KindRelay, name: r.Name}, problems), nil
}
