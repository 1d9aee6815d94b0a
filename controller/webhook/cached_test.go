package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// countingReader counts the reads that go to the API server.
type countingReader struct {
	StaticReader
	n atomic.Int32
}

func (r *countingReader) Objects(ctx context.Context, ns string) (config.Objects, error) {
	r.n.Add(1)
	return r.StaticReader.Objects(ctx, ns)
}

// TestCachedReads: requests are decided from the informer cache; the API
// server is read only to confirm a refusal, so an object created a moment
// ago (not yet in the cache) is never the reason for one.
func TestCachedReads(t *testing.T) {
	old := pool("old", "198.51.100.0/28")
	fresh := pool("fresh", "198.51.100.16/28") // created a moment ago
	cached := StaticReader{Current: config.Objects{Pools: []v1alpha1.IPAddressPool{*old}}}
	direct := &countingReader{StaticReader: StaticReader{Current: config.Objects{Pools: []v1alpha1.IPAddressPool{*old, *fresh}}}}
	h := &handler{namespace: testNS, objects: direct, cached: cached, log: testLogger(t), metrics: NewMetrics(prometheus.NewRegistry())}
	steps := []struct {
		name       string
		body       []byte
		allowed    bool
		wantDirect int32 // API server reads so far
	}{
		{"valid pool, from the cache", reviewFor(t, admissionv1.Create, testNS, pool("new", "198.51.100.32/28")), true, 0},
		{"another valid pool", reviewFor(t, admissionv1.Update, testNS, pool("old", "198.51.100.0/29")), true, 0},
		{"advertisement of the fresh pool, confirmed", reviewFor(t, admissionv1.Create, testNS, bgpAdv("adv", "fresh")), true, 1},
		{"advertisement of a missing pool, refused", reviewFor(t, admissionv1.Create, testNS, bgpAdv("adv", "missing")), false, 2},
	}
	for _, s := range steps {
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(s.body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got, msg := readOutcome(t, w, "uid-1")
		if got.Code != http.StatusOK || got.Allowed != s.allowed {
			t.Errorf("%s: outcome %+v (%s), want allowed %v", s.name, got, msg, s.allowed)
		}
		if n := direct.n.Load(); n != s.wantDirect {
			t.Errorf("%s: %d reads from the API server, want %d", s.name, n, s.wantDirect)
		}
	}
}
