package controller_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// The pier-controller binary serves the webhook next to the controller: an
// invalid pool is refused by the API server with the field named.
func TestControllerServesWebhook(t *testing.T) {
	e := newEnv(t)
	addr := freeAddr(t)
	e.runController(t, "--webhook=true", "--webhook-url=https://"+addr, "--webhook-addr="+addr, "--health-addr=127.0.0.1:0")
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
