package webhook

// The handler is plain net/http over k8s.io/api/admission/v1 rather than
// controller-runtime's admission package: it is one endpoint with one
// decision, the types are the API's own, and it needs nothing from a
// manager, so the controller can mount it or run it alone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// maxBodyBytes bounds a review: an object is at most about 3 MiB and an
// UPDATE carries two.
const maxBodyBytes = 8 << 20

// errBadRequest marks requests the API server would never send.
var errBadRequest = errors.New("bad admission request")

type handler struct {
	namespace string
	// passwordNamespace holds the BGP password Secrets (config.Objects).
	passwordNamespace string
	objects           ObjectsReader // direct: confirms a refusal
	cached            ObjectsReader // nil: every request reads objects
	log               *slog.Logger
	metrics           *Metrics
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			h.fail(w, kindUnknown, fmt.Errorf("panic: %v", p))
		}
	}()
	review, err := decodeReview(w, r)
	if err != nil {
		h.fail(w, kindUnknown, err)
		return
	}
	kind := kindLabel(review.Request.Kind)
	resp, err := h.review(r.Context(), review.Request)
	if err != nil {
		h.fail(w, kind, err)
		return
	}
	result := resultAllowed
	if !resp.Allowed {
		result = resultDenied
	}
	h.metrics.request(kind, result)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.log.Debug("write admission response", "err", err)
	}
}

// fail answers with 400 for a bad request and 500 otherwise; the API server
// then applies the failure policy.
func (h *handler) fail(w http.ResponseWriter, kind string, err error) {
	h.metrics.request(kind, resultError)
	code := http.StatusInternalServerError
	if errors.Is(err, errBadRequest) {
		code = http.StatusBadRequest
	}
	h.log.Warn("admission request failed", "kind", kind, "code", code, "err", err)
	http.Error(w, err.Error(), code)
}

func decodeReview(w http.ResponseWriter, r *http.Request) (*admissionv1.AdmissionReview, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("%w: method %s, want POST", errBadRequest, r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("%w: content type %q, want application/json", errBadRequest, r.Header.Get("Content-Type"))
	}
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&review); err != nil {
		return nil, fmt.Errorf("%w: decode AdmissionReview: %w", errBadRequest, err)
	}
	gvk := review.GroupVersionKind()
	switch {
	case gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"):
		return nil, fmt.Errorf("%w: got %s, want admission.k8s.io/v1 AdmissionReview", errBadRequest, gvk)
	case review.Request == nil:
		return nil, fmt.Errorf("%w: no request", errBadRequest)
	case review.Request.UID == "":
		return nil, fmt.Errorf("%w: request has no uid", errBadRequest)
	}
	return &review, nil
}

// review decides on one request.
func (h *handler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return &admissionv1.AdmissionResponse{Allowed: true}, nil
	}
	if isRelay(req) {
		return reviewRelay(req)
	}
	obj, err := decodeObject(req)
	if err != nil {
		return nil, err
	}
	if req.Namespace != h.namespace {
		return deny(obj, []*config.Error{{
			Kind: obj.kind, Namespace: req.Namespace, Name: obj.name, Field: "metadata.namespace",
			Message: fmt.Sprintf("Pier reads its configuration only from namespace %q; an object in %q would be ignored", h.namespace, req.Namespace),
		}}), nil
	}
	if h.cached != nil {
		problems, err := h.problems(ctx, h.cached, obj)
		if err != nil {
			return nil, err
		}
		if len(problems) == 0 {
			return &admissionv1.AdmissionResponse{Allowed: true}, nil
		}
		// The cache may lag (a pool created by the same kubectl apply): a
		// refusal is decided on what the API server holds.
	}
	problems, err := h.problems(ctx, h.objects, obj)
	if err != nil {
		return nil, err
	}
	if len(problems) == 0 {
		return &admissionv1.AdmissionResponse{Allowed: true}, nil
	}
	return deny(obj, problems), nil
}

// problems validates obj against the objects r reads: what is wrong with
// obj itself (other objects' problems do not refuse it).
func (h *handler) problems(ctx context.Context, r ObjectsReader, obj *object) ([]*config.Error, error) {
	objs, err := r.Objects(ctx, h.namespace)
	if err != nil {
		return nil, fmt.Errorf("read current %s configuration: %w", h.namespace, err)
	}
	obj.upsert(&objs)
	objs.PasswordNamespace = h.passwordNamespace
	if _, err = config.Parse(objs); err == nil {
		return nil, nil
	}
	problems := config.ForObject(err, obj.kind, h.namespace, obj.name)
	if len(problems) == 0 {
		h.log.Debug("admitted; other objects are invalid", "kind", obj.kind, "name", obj.name, "err", err)
	}
	return problems, nil
}

// deny refuses with 422 Invalid and one cause per problem, so clients see
// each field as they do for the API server's own validation.
// The message joins the problems, each naming the object and the field.
func deny(obj *object, problems []*config.Error) *admissionv1.AdmissionResponse {
	causes := make([]metav1.StatusCause, len(problems))
	msgs := make([]string, len(problems))
	for i, p := range problems {
		causes[i] = metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: p.Field, Message: p.Message}
		msgs[i] = p.Error()
	}
	msg := strings.Join(msgs, "; ")
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusUnprocessableEntity,
			Reason:  metav1.StatusReasonInvalid,
			Message: msg,
			Details: &metav1.StatusDetails{Group: v1alpha1.GroupVersion.Group, Kind: obj.kind, Name: obj.name, Causes: causes},
		},
	}
}

// object is the decoded object of a request.
type object struct {
	kind, name string
	upsert     func(*config.Objects)
}

func decodeObject(req *admissionv1.AdmissionRequest) (*object, error) {
	if req.Kind.Group != v1alpha1.GroupVersion.Group || req.Kind.Version != v1alpha1.GroupVersion.Version {
		return nil, fmt.Errorf("%w: kind %s is not a Pier kind", errBadRequest, req.Kind)
	}
	switch req.Kind.Kind {
	case "IPAddressPool":
		return decodeAs(req, func(o *config.Objects) *[]v1alpha1.IPAddressPool { return &o.Pools })
	case "L2Advertisement":
		return decodeAs(req, func(o *config.Objects) *[]v1alpha1.L2Advertisement { return &o.L2Advertisements })
	case "BGPPeer":
		return decodeAs(req, func(o *config.Objects) *[]v1alpha1.BGPPeer { return &o.BGPPeers })
	case "BGPAdvertisement":
		return decodeAs(req, func(o *config.Objects) *[]v1alpha1.BGPAdvertisement { return &o.BGPAdvertisements })
	}
	return nil, fmt.Errorf("%w: kind %s is not a Pier kind", errBadRequest, req.Kind)
}

// named is a pointer to one of the CR types.
type named[T any] interface {
	*T
	GetName() string
	SetName(string)
	SetNamespace(string)
}

// decodeAs decodes the request's object as T; upsert replaces the object of
// the same name in the slice list selects, or appends it.
func decodeAs[T any, P named[T]](req *admissionv1.AdmissionRequest, list func(*config.Objects) *[]T) (*object, error) {
	var obj T
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", errBadRequest, req.Kind.Kind, err)
	}
	p := P(&obj)
	if p.GetName() == "" {
		p.SetName(req.Name)
	}
	p.SetNamespace(req.Namespace)
	o := &object{kind: req.Kind.Kind, name: p.GetName()}
	o.upsert = func(objs *config.Objects) {
		items := list(objs)
		for i := range *items {
			if P(&(*items)[i]).GetName() == o.name {
				(*items)[i] = obj
				return
			}
		}
		*items = append(*items, obj)
	}
	return o, nil
}

func kindLabel(gvk metav1.GroupVersionKind) string {
	if gvk.Group != v1alpha1.GroupVersion.Group {
		return kindUnknown
	}
	switch gvk.Kind {
	case "IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement", config.KindRelay:
		return gvk.Kind
	}
	return kindUnknown
}
