// Package gossipkey creates the Secret holding the speakers' memberlist
// key when it does not exist yet. The key is made in the cluster, not by
// the chart: `helm template` (GitOps tools) cannot look up an existing
// Secret, so a chart-made key changed on every rendering and split the
// speakers. The Secret is only ever created: an existing one (the site's
// own, or one being rotated) is never read, changed or deleted, so the
// controller needs no read access to it.
package gossipkey

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// KeyName is the Secret key the speakers read (--memberlist-key-file).
const KeyName = "key"

// Options configure the creator. Kube, Namespace and Name are required.
type Options struct {
	Kube      kubernetes.Interface
	Namespace string
	Name      string
	// Retry is the wait between failed attempts; default 5s.
	Retry  time.Duration
	Logger *slog.Logger
	Clock  clock.WithTicker
}

// Creator makes sure the memberlist key Secret exists.
type Creator struct{ opts Options }

// New validates opts; it starts nothing.
func New(opts Options) (*Creator, error) {
	if opts.Kube == nil || opts.Namespace == "" || opts.Name == "" {
		return nil, errors.New("gossipkey: Kube, Namespace and Name are required")
	}
	if opts.Retry <= 0 {
		opts.Retry = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Creator{opts: opts}, nil
}

// Run creates the Secret, retrying until it exists or ctx ends; then it
// returns nil.
func (c *Creator) Run(ctx context.Context) error {
	for {
		created, err := c.Ensure(ctx)
		if err == nil {
			if created {
				c.opts.Logger.Info("memberlist key created", "secret", c.opts.Namespace+"/"+c.opts.Name)
			}
			return nil
		}
		c.opts.Logger.Error("memberlist key", "err", err)
		t := c.opts.Clock.NewTimer(c.opts.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// Start is Run, for controller-runtime's manager.
func (c *Creator) Start(ctx context.Context) error { return c.Run(ctx) }

// NeedLeaderElection: every replica may create the Secret (only one
// create succeeds), so the speakers do not wait for an election.
func (c *Creator) NeedLeaderElection() bool { return false }

// Ensure creates the Secret with a new random 32 byte key unless one of
// that name exists; it reports whether it created it.
func (c *Creator) Ensure(ctx context.Context) (bool, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return false, fmt.Errorf("memberlist key: %w", err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: c.opts.Name, Namespace: c.opts.Namespace, Labels: map[string]string{
			"app.kubernetes.io/name": "pier", "app.kubernetes.io/component": "speaker",
		}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{KeyName: key},
	}
	_, err := c.opts.Kube.CoreV1().Secrets(c.opts.Namespace).Create(ctx, s, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("create Secret %s/%s: %w", c.opts.Namespace, c.opts.Name, err)
	}
	return true, nil
}
