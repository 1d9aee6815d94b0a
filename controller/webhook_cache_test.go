package controller_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller"
	"github.com/pier-lb/pier/controller/webhook"
)

// TestWebhookFromCache runs the controller with its webhook, which decides
// from the manager's cache: an advertisement of a pool created just before
// is admitted, one of a missing pool refused.
func TestWebhookFromCache(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e.startController(func(o *controller.ManagerOptions) {
		o.Webhook = &webhook.Options{URL: "https://" + addr, ListenAddress: addr}
	})
	ctx := context.Background()
	adv := func(name, pool string) *v1alpha1.BGPAdvertisement {
		a := &v1alpha1.BGPAdvertisement{Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{pool}}}
		a.Name, a.Namespace = name, pierNS
		return a
	}
	// Until the webhook serves, creations are not checked (failurePolicy
	// Ignore): wait for the refusal.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := e.c.Create(ctx, adv("probe", "missing"))
		if err == nil {
			return false, e.c.Delete(ctx, adv("probe", "missing"))
		}
		if !strings.Contains(err.Error(), "missing") {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("webhook never refused an advertisement of a missing pool: %v", err)
	}
	e.create(pool("fresh", "198.51.100.0/28"))
	if err := e.c.Create(ctx, adv("fresh", "fresh")); err != nil {
		t.Errorf("advertisement of a pool created just before: %v", err)
	}
}
