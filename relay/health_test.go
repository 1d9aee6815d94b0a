package relay

import (
	"testing"
	"time"
)

// The active check takes an up backend whose health port stops answering
// out of the tables without any traffic to it.
func TestActiveCheckMarksUpBackendDown(t *testing.T) {
	live := startBackend(t, "live", "127.0.0.1", false)
	gone := startBackend(t, "gone", "127.0.0.1", false)
	gone.HealthPort = closedPort(t)
	r := startRelay(t, Options{Backends: backends(live, gone), HealthInterval: 20 * time.Millisecond})
	eventually(t, "gone marked down by the active check", func() bool {
		return r.counter(r.metrics.backendUp.WithLabelValues("gone")) == 0
	})
	if got := r.table("udp").Backends(); len(got) != 1 || got[0] != "live" {
		t.Errorf("udp table %v, want only live", got)
	}
	if up := r.counter(r.metrics.backendUp.WithLabelValues("live")); up != 1 {
		t.Errorf("live backend up=%v", up)
	}
}

// The active check on a PROXY protocol backend's own port sends a v2 LOCAL
// header, so the backend reads a valid header rather than an error.
func TestActiveCheckSendsProxyLocalHeader(t *testing.T) {
	pp := startBackend(t, "pp", "127.0.0.1", true)
	startRelay(t, Options{Backends: backends(pp), HealthInterval: 20 * time.Millisecond})
	eventually(t, "a LOCAL header from the health check", func() bool {
		for _, h := range pp.seen() {
			if h.Command.IsLocal() && h.Version == 2 {
				return true
			}
		}
		return false
	})
}
