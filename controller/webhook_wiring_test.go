package controller_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// The pier-controller binary serves the webhook next to the controller (an
// invalid pool is refused by the API server with the field named), metrics
// and health endpoints.
func TestControllerProcessEndpoints(t *testing.T) {
	e := newEnv(t)
	addr, metrics, health := freeAddr(t), freeAddr(t), freeAddr(t)
	e.runController(t, "--webhook=true", "--webhook-url=https://"+addr, "--webhook-addr="+addr,
		"--metrics-addr="+metrics, "--health-addr="+health)
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		lastErr = e.c.Create(ctx, pool("bad", "198.51.100.300/24"))
		if lastErr == nil { // webhook not in effect yet: take it back and retry
			return false, e.c.Delete(ctx, pool("bad"))
		}
		return strings.Contains(lastErr.Error(), "denied the request"), nil
	})
	if err != nil {
		t.Fatalf("invalid pool never refused by the webhook; last error: %v", lastErr)
	}
	if !strings.Contains(lastErr.Error(), "spec.addresses[0]") {
		t.Errorf("refusal %q does not name the field", lastErr)
	}
	e.create(pool("good", "198.51.100.200-198.51.100.250"))
	e.create(service("default", "web"))
	e.waitAssigned("default", "web")

	// Relays are checked in their own namespace, and the process runs the
	// Relay controller too.
	bad := &v1alpha1.Relay{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bad"}, Spec: v1alpha1.RelaySpec{
		Backend: v1alpha1.RelayBackend{ServiceName: "calling"}, Timeouts: v1alpha1.RelayTimeouts{UDPIdle: &metav1.Duration{}},
	}}
	if err := e.c.Create(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "spec.timeouts.udpIdle") {
		t.Errorf("invalid Relay: %v, want a refusal naming spec.timeouts.udpIdle", err)
	}
	bad.Name, bad.Spec.Timeouts = "edge", v1alpha1.RelayTimeouts{}
	e.create(bad)
	e.waitAssigned("default", "edge-relay")

	for _, path := range []string{"/healthz", "/readyz"} {
		if body := httpGet(t, "http://"+health+path); !strings.Contains(body, "ok") {
			t.Errorf("%s: %q", path, body)
		}
	}
	for _, want := range []string{`pier_allocator_addresses_in_use{family="IPv4",pool="good"} 2`, `pier_controller_relays{state="not_ready"} 1`} {
		err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return strings.Contains(httpGet(t, "http://"+metrics+"/metrics"), want), nil
		})
		if err != nil {
			t.Errorf("/metrics never showed %s", want)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}
