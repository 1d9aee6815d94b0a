package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

const testNS = "pier-system"

func pool(name string, addrs ...string) *v1alpha1.IPAddressPool {
	return &v1alpha1.IPAddressPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "IPAddressPool"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       v1alpha1.IPAddressPoolSpec{Addresses: addrs},
	}
}

func bgpAdv(name string, pools ...string) *v1alpha1.BGPAdvertisement {
	return &v1alpha1.BGPAdvertisement{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "BGPAdvertisement"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       v1alpha1.BGPAdvertisementSpec{IPAddressPools: pools},
	}
}

func relay(ns, name string, mutate ...func(*v1alpha1.RelaySpec)) *v1alpha1.Relay {
	r := &v1alpha1.Relay{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Relay"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.RelaySpec{Backend: v1alpha1.RelayBackend{ServiceName: "calling"}},
	}
	for _, m := range mutate {
		m(&r.Spec)
	}
	return r
}

// duplicatePort makes two listeners on 8443/TCP.
func duplicatePort(s *v1alpha1.RelaySpec) {
	s.Listeners = []v1alpha1.RelayListener{
		{Name: "a", Protocol: corev1.ProtocolTCP, Port: 8443},
		{Name: "b", Protocol: corev1.ProtocolTCP, Port: 8443},
	}
}

func bgpPeer(name, secretNamespace string) *v1alpha1.BGPPeer {
	return &v1alpha1.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "198.51.100.1",
			PasswordSecret: &v1alpha1.SecretKeyRef{Name: "md5", Namespace: secretNamespace}},
	}
}

func l2Adv(name string, pools ...string) *v1alpha1.L2Advertisement {
	return &v1alpha1.L2Advertisement{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "L2Advertisement"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       v1alpha1.L2AdvertisementSpec{IPAddressPools: pools},
	}
}

// reviewFor builds the AdmissionReview the API server would send.
func reviewFor(t *testing.T, op admissionv1.Operation, namespace string, obj runtime.Object) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	meta := obj.(metav1.Object)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-1"),
			Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Name:      meta.GetName(),
			Namespace: namespace,
			Operation: op,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// outcome is what a test compares: the HTTP code, the decision, the fields
// named by the causes and the metric of the request.
type outcome struct {
	Code    int
	Allowed bool
	Fields  []string
	Metric  string
}

func TestHandler(t *testing.T) {
	existing := config.Objects{
		Pools: []v1alpha1.IPAddressPool{*pool("pool-a", "198.51.100.0/25")},
	}
	withBroken := existing
	withBroken.L2Advertisements = []v1alpha1.L2Advertisement{*l2Adv("broken", "nowhere")}
	tests := []struct {
		name       string
		objects    ObjectsReader
		body       []byte
		method     string
		wantMsg    []string // substrings of the denial message
		want       outcome
		wantStatus string // substring of the HTTP body on failure
	}{{
		name: "valid pool",
		body: reviewFor(t, admissionv1.Create, testNS, pool("pool-b", "198.51.100.200-198.51.100.250")),
		want: outcome{Code: 200, Allowed: true, Metric: "IPAddressPool/allowed"},
	}, {
		name:    "pool with a bad address",
		body:    reviewFor(t, admissionv1.Create, testNS, pool("pool-b", "198.51.100.300/24")),
		want:    outcome{Code: 200, Fields: []string{"spec.addresses[0]"}, Metric: "IPAddressPool/denied"},
		wantMsg: []string{"pool-b", "spec.addresses[0]", "198.51.100.300/24"},
	}, {
		name:    "pool holding multicast addresses",
		body:    reviewFor(t, admissionv1.Create, testNS, pool("pool-b", "198.51.100.200/29", "224.0.0.0/24")),
		want:    outcome{Code: 200, Fields: []string{"spec.addresses[1]"}, Metric: "IPAddressPool/denied"},
		wantMsg: []string{"pool-b", "spec.addresses[1]", "multicast addresses (224.0.0.0/4)"},
	}, {
		name:    "pool overlapping an existing one",
		body:    reviewFor(t, admissionv1.Create, testNS, pool("pool-b", "198.51.100.64/26")),
		want:    outcome{Code: 200, Fields: []string{"spec.addresses[0]"}, Metric: "IPAddressPool/denied"},
		wantMsg: []string{"pool-a", "pool-b", "spec.addresses[0]"},
	}, {
		name: "update replaces the old version",
		body: reviewFor(t, admissionv1.Update, testNS, pool("pool-a", "198.51.100.0/26")),
		want: outcome{Code: 200, Allowed: true, Metric: "IPAddressPool/allowed"},
	}, {
		name:    "advertisement of an unknown pool",
		body:    reviewFor(t, admissionv1.Create, testNS, bgpAdv("adv", "pool-a", "missing")),
		want:    outcome{Code: 200, Fields: []string{"spec.ipAddressPools[1]"}, Metric: "BGPAdvertisement/denied"},
		wantMsg: []string{"spec.ipAddressPools[1]", "missing"},
	}, {
		name: "advertisement of a known pool",
		body: reviewFor(t, admissionv1.Create, testNS, bgpAdv("adv", "pool-a")),
		want: outcome{Code: 200, Allowed: true, Metric: "BGPAdvertisement/allowed"},
	}, {
		name:    "another object's fault does not block this one",
		objects: StaticReader{Current: withBroken},
		body:    reviewFor(t, admissionv1.Create, testNS, l2Adv("fine", "pool-a")),
		want:    outcome{Code: 200, Allowed: true, Metric: "L2Advertisement/allowed"},
	}, {
		name:    "wrong namespace",
		body:    reviewFor(t, admissionv1.Create, "default", pool("pool-b", "198.51.100.200/32")),
		want:    outcome{Code: 200, Fields: []string{"metadata.namespace"}, Metric: "IPAddressPool/denied"},
		wantMsg: []string{`only from namespace "pier-system"`},
	}, {
		// The handler is told the namespace of BGP passwords (site-bgp).
		name: "peer password in the namespace of BGP passwords",
		body: reviewFor(t, admissionv1.Create, testNS, bgpPeer("r1", "site-bgp")),
		want: outcome{Code: 200, Allowed: true, Metric: "BGPPeer/allowed"},
	}, {
		name:    "peer password in another namespace",
		body:    reviewFor(t, admissionv1.Create, testNS, bgpPeer("r1", testNS)),
		want:    outcome{Code: 200, Fields: []string{"spec.passwordSecret.namespace"}, Metric: "BGPPeer/denied"},
		wantMsg: []string{`"pier-system": BGP password Secrets must be in namespace "site-bgp"`},
	}, {
		name: "delete is allowed",
		body: reviewFor(t, admissionv1.Delete, testNS, pool("pool-a", "198.51.100.0/25")),
		want: outcome{Code: 200, Allowed: true, Metric: "IPAddressPool/allowed"},
	}, {
		name: "valid relay in an application namespace",
		body: reviewFor(t, admissionv1.Create, "calls", relay("calls", "edge")),
		want: outcome{Code: 200, Allowed: true, Metric: "Relay/allowed"},
	}, {
		name:    "relay with a duplicate port",
		body:    reviewFor(t, admissionv1.Update, "calls", relay("calls", "edge", duplicatePort)),
		want:    outcome{Code: 200, Fields: []string{"spec.listeners[1].port"}, Metric: "Relay/denied"},
		wantMsg: []string{"Relay calls/edge", "spec.listeners[1].port", "8443/TCP is also spec.listeners[0]"},
	}, {
		name:    "relay checked without reading the configuration",
		objects: StaticReader{Err: errors.New("must not be read")},
		body:    reviewFor(t, admissionv1.Create, "calls", relay("calls", "edge", duplicatePort)),
		want:    outcome{Code: 200, Fields: []string{"spec.listeners[1].port"}, Metric: "Relay/denied"},
	}, {
		name:       "relay does not decode",
		body:       bytes.Replace(reviewFor(t, admissionv1.Create, "calls", relay("calls", "edge")), []byte(`"serviceName":"calling"`), []byte(`"serviceName":7`), 1),
		want:       outcome{Code: 400, Metric: "Relay/error"},
		wantStatus: "decode Relay",
	}, {
		name:       "not JSON",
		body:       []byte("{not json"),
		want:       outcome{Code: 400, Metric: "unknown/error"},
		wantStatus: "decode AdmissionReview",
	}, {
		name:       "no request",
		body:       []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		want:       outcome{Code: 400, Metric: "unknown/error"},
		wantStatus: "no request",
	}, {
		name:       "v1beta1 review",
		body:       []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`),
		want:       outcome{Code: 400, Metric: "unknown/error"},
		wantStatus: "want admission.k8s.io/v1",
	}, {
		name:       "not a Pier kind",
		body:       bytes.Replace(reviewFor(t, admissionv1.Create, testNS, pool("p", "198.51.100.1/32")), []byte(`"pier.dev"`), []byte(`"apps"`), 1),
		want:       outcome{Code: 400, Metric: "unknown/error"},
		wantStatus: "not a Pier kind",
	}, {
		name:       "object does not decode",
		body:       bytes.Replace(reviewFor(t, admissionv1.Create, testNS, pool("p", "198.51.100.1/32")), []byte(`"addresses":[`), []byte(`"addresses":[7,`), 1),
		want:       outcome{Code: 400, Metric: "IPAddressPool/error"},
		wantStatus: "decode IPAddressPool",
	}, {
		name:       "GET",
		method:     http.MethodGet,
		want:       outcome{Code: 400, Metric: "unknown/error"},
		wantStatus: "want POST",
	}, {
		name:       "reader fails",
		objects:    StaticReader{Err: errors.New("apiserver gone")},
		body:       reviewFor(t, admissionv1.Create, testNS, pool("pool-b", "198.51.100.200/32")),
		want:       outcome{Code: 500, Metric: "IPAddressPool/error"},
		wantStatus: "apiserver gone",
	}, {
		name:       "reader panics",
		objects:    panicReader{},
		body:       reviewFor(t, admissionv1.Create, testNS, pool("pool-b", "198.51.100.200/32")),
		want:       outcome{Code: 500, Metric: "unknown/error"},
		wantStatus: "panic",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.objects == nil {
				tt.objects = StaticReader{Current: existing}
			}
			if tt.method == "" {
				tt.method = http.MethodPost
			}
			reg := prometheus.NewPedanticRegistry()
			m := NewMetrics(reg)
			h := &handler{namespace: testNS, passwordNamespace: "site-bgp", objects: tt.objects, log: testLogger(t), metrics: m}
			r := httptest.NewRequest(tt.method, Path, bytes.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			got, msg := readOutcome(t, w, "uid-1")
			got.Metric = onlyMetric(t, reg)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s\nmessage: %s", diff, msg)
			}
			for _, s := range tt.wantMsg {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not contain %q", msg, s)
				}
			}
			if tt.wantStatus != "" && !strings.Contains(w.Body.String(), tt.wantStatus) {
				t.Errorf("body %q does not contain %q", w.Body.String(), tt.wantStatus)
			}
		})
	}
}

// readOutcome decodes a response; for 200 it checks the review echoes uid.
func readOutcome(t *testing.T, w *httptest.ResponseRecorder, uid string) (outcome, string) {
	t.Helper()
	got := outcome{Code: w.Code}
	if w.Code != http.StatusOK {
		return got, ""
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &review); err != nil {
		t.Fatalf("decode response %q: %v", w.Body.String(), err)
	}
	resp := review.Response
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || resp == nil || string(resp.UID) != uid {
		t.Fatalf("response is not a v1 review of uid %s: %s", uid, w.Body.String())
	}
	got.Allowed = resp.Allowed
	if resp.Result == nil {
		return got, ""
	}
	if resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
		t.Errorf("denial is %d %s, want 422 Invalid", resp.Result.Code, resp.Result.Reason)
	}
	if d := resp.Result.Details; d != nil {
		for _, c := range d.Causes {
			got.Fields = append(got.Fields, c.Field)
		}
	}
	return got, resp.Result.Message
}

// onlyMetric returns "kind/result" of the single request counted.
func onlyMetric(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "pier_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var kind, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "kind":
					kind = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			out = append(out, kind+"/"+result)
			if v := m.GetCounter().GetValue(); v != 1 {
				t.Errorf("%s/%s counted %v times", kind, result, v)
			}
		}
	}
	if len(out) != 1 {
		t.Fatalf("requests counted: %v, want exactly one", out)
	}
	return out[0]
}

func TestMetricsRegister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.certExpiry.Set(42)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{"pier_webhook_cert_expiry_timestamp_seconds": 42}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gathered (-want +got):\n%s", diff)
	}
}

type panicReader struct{}

func (panicReader) Objects(context.Context, string) (config.Objects, error) { panic("boom") }
