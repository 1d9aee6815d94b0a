package daemon

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHealthz: /healthz answers 503 naming what is wrong while a check
// fails (a speaker whose API cache has not synced and that has no saved
// state to announce from), and 200 once every check passes.
func TestHealthz(t *testing.T) {
	var h Health
	apiErr := errors.New("API cache not synced")
	h.Add("api", func() error { return apiErr })
	h.Add("announcer", func() error { return nil })
	srv := httptest.NewServer(MetricsHandler(prometheus.NewRegistry(), &h))
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "api: API cache not synced") {
		t.Errorf("failing check: %d %q, want 503 naming it", code, body)
	}
	apiErr = nil
	if code, body := get(); code != http.StatusOK {
		t.Errorf("all checks pass: %d %q, want 200", code, body)
	}
}

// TestMetricsAddr: the default listen address is the node's (or pod's)
// address from the environment, loopback without one; never all addresses.
func TestMetricsAddr(t *testing.T) {
	tests := []struct{ env, want string }{
		{"192.0.2.11", "192.0.2.11:7572"},
		{"2001:db8::11", "[2001:db8::11]:7572"},
		{"", "127.0.0.1:7572"},
	}
	for _, tt := range tests {
		t.Setenv("PIER_TEST_NODE_IP", tt.env)
		if diff := cmp.Diff(tt.want, ListenAddr("PIER_TEST_NODE_IP", 7572)); diff != "" {
			t.Errorf("env %q (-want +got):\n%s", tt.env, diff)
		}
	}
}

// TestAPICheck: not synced is unhealthy only while the API server answers.
func TestAPICheck(t *testing.T) {
	tests := []struct {
		name   string
		synced bool
		ping   error
		ok     bool
	}{
		{"synced", true, nil, true},
		{"synced, API gone since", true, errors.New("refused"), true},
		{"not synced, API answers", false, nil, false},
		{"not synced, API unreachable (outage mode)", false, errors.New("refused"), true},
	}
	for _, tt := range tests {
		err := APICheck(func() bool { return tt.synced }, func() error { return tt.ping })()
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want healthy %v", tt.name, err, tt.ok)
		}
	}
}
