package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// fuzzHandler is a handler over a fixed set of existing objects.
func fuzzHandler() *handler {
	existing := config.Objects{Pools: []v1alpha1.IPAddressPool{*pool("pool-a", "198.51.100.0/25")}}
	return &handler{namespace: testNS, objects: StaticReader{Current: existing}, log: slog.New(slog.DiscardHandler),
		metrics: NewMetrics(prometheus.NewRegistry())}
}

// checkAnswer: a body gets a 400, or a 200 with a well-formed
// admission.k8s.io/v1 AdmissionReview whose response echoes the request's
// uid; never a 500 (the handler turns a panic into one), never anything else.
func checkAnswer(t *testing.T, body []byte) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	fuzzHandler().ServeHTTP(w, r)
	switch w.Code {
	case http.StatusBadRequest:
		return
	case http.StatusOK:
	default:
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var in, out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
		t.Fatalf("200 for a body that is no review (%v)", err)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is no JSON review: %v\n%s", err, w.Body)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Request != nil {
		t.Fatalf("malformed review %s", w.Body)
	}
	if out.Response.UID != in.Request.UID {
		t.Fatalf("response uid %q, request uid %q", out.Response.UID, in.Request.UID)
	}
	if !out.Response.Allowed && (out.Response.Result == nil || out.Response.Result.Message == "") {
		t.Fatalf("denied without a message: %s", w.Body)
	}
}

func reviewBody(kind metav1.GroupVersionKind, op admissionv1.Operation, raw []byte) []byte {
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID("uid-1"), Kind: kind, Name: "x", Namespace: testNS,
			Operation: op, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func seedObjects() []runtime.Object {
	return []runtime.Object{
		pool("pool-b", "198.51.100.200-198.51.100.250"), pool("pool-b", "198.51.100.300/24"),
		l2Adv("adv", "pool-a"), l2Adv("adv", "nowhere"), bgpAdv("adv", "pool-a"),
		relay(testNS, "calls"), relay(testNS, "calls", duplicatePort),
	}
}

// FuzzAdmissionBody sends any body to the webhook's HTTP handler.
func FuzzAdmissionBody(f *testing.F) {
	for _, o := range seedObjects() {
		raw, err := json.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		gvk := o.GetObjectKind().GroupVersionKind()
		f.Add(reviewBody(metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}, admissionv1.Create, raw))
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, body []byte) { checkAnswer(t, body) })
}

// FuzzAdmissionObject puts any object bytes, kind and operation inside a
// well-formed review, to reach the decoding of each kind.
func FuzzAdmissionObject(f *testing.F) {
	for _, o := range seedObjects() {
		raw, err := json.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		gvk := o.GetObjectKind().GroupVersionKind()
		f.Add(gvk.Group, gvk.Version, gvk.Kind, string(admissionv1.Create), raw)
		f.Add(gvk.Group, gvk.Version, gvk.Kind, string(admissionv1.Update), raw)
	}
	f.Add(v1alpha1.GroupVersion.Group, "v1alpha1", "IPAddressPool", "CREATE", []byte(`{"spec":{"addresses":null}}`))
	f.Add(v1alpha1.GroupVersion.Group, "v1alpha1", "Relay", "CREATE", []byte(`{"spec":1}`))
	f.Add("", "v1", "Pod", "DELETE", []byte(`{}`))
	f.Fuzz(func(t *testing.T, group, version, kind, op string, raw []byte) {
		if !json.Valid(raw) {
			return // the review would not marshal
		}
		gvk := metav1.GroupVersionKind{Group: group, Version: version, Kind: kind}
		checkAnswer(t, reviewBody(gvk, admissionv1.Operation(op), raw))
	})
}
