package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/pier-lb/pier/internal/daemon"
)

// /healthz fails while the agent's API cache cannot sync although the API
// server answers (here: every list is forbidden, as with a broken
// ClusterRole), instead of reporting ok whatever happens.
func TestHealthWhileUnsynced(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`))
	}))
	defer api.Close()
	health := &daemon.Health{}
	a, err := New(Options{Config: &rest.Config{Host: api.URL}, NodeName: "node1", Namespace: "pier-relays", Health: health})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := health.Check()
		if err != nil && strings.Contains(err.Error(), "not synced although the API server answers") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: %v, want an unsynced API cache reported", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
