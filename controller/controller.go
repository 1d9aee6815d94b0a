package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/pier-lb/pier/allocator"
)

// EventRecorder records events about objects (client-go's events API, as
// controller-runtime's manager hands it out).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Options configures the controller.
type Options struct {
	// Client reads from the informer caches and writes to the API server.
	Client client.Client
	// Reader reads from the API server, uncached: the assignments restored
	// on taking over and a status that disagrees with the allocator are
	// read through it (default Client).
	Reader client.Reader
	// Fence returns an error when this replica may no longer be the
	// leader (LeaseFence.Check); no status is written then. Nil: always
	// write (no leader election).
	Fence func() error
	// Namespace holds Pier's configuration objects.
	Namespace string
	// OnlyOwnClass serves only Services whose spec.loadBalancerClass is
	// pier.dev/lb; otherwise Services with no class are served too.
	OnlyOwnClass bool
	// Workers reconcile different Services in parallel (default 16): the
	// allocator decides under one lock in microseconds, and the status
	// writes, which take milliseconds each, overlap. One Service is never
	// reconciled by two workers at once.
	Workers  int
	Recorder EventRecorder
	Metrics  *Metrics
	Logger   *slog.Logger
	Clock    clock.WithTicker
}

// Controller assigns addresses to Services.
type Controller struct {
	opts  Options
	log   *slog.Logger
	alloc *allocator.Allocator

	mu         sync.Mutex
	restored   bool
	poolsDirty bool
	statsDirty bool
	poolsRV    string // fingerprint of the last pool set applied
	// poolConds is each pool's Valid condition as of the last pool set
	// applied, by pool name; replaced whole, never modified.
	poolConds map[string]poolCond
	// freed signals that a release freed addresses: Services still
	// waiting for one are tried again (buffered, so signals coalesce).
	freed chan event.GenericEvent
}

// New validates opts. It starts nothing: register the controller with a
// manager (SetupWithManager), which runs it when it leads.
func New(opts Options) (*Controller, error) {
	if opts.Client == nil {
		return nil, errors.New("controller: a client is required")
	}
	if opts.Namespace == "" {
		return nil, errors.New("controller: the configuration namespace is required")
	}
	if opts.Recorder == nil {
		return nil, errors.New("controller: an event recorder is required")
	}
	if opts.Metrics == nil {
		return nil, errors.New("controller: metrics are required (NewMetrics)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Reader == nil {
		opts.Reader = opts.Client
	}
	if opts.Fence == nil {
		opts.Fence = func() error { return nil }
	}
	alloc, err := allocator.New(allocator.Options{})
	if err != nil {
		return nil, err
	}
	return &Controller{
		freed:      make(chan event.GenericEvent, 1),
		opts:       opts,
		log:        opts.Logger.With("component", "controller"),
		alloc:      alloc,
		poolsDirty: true,
	}, nil
}

// ready brings the allocator up to date before a reconcile: the pools first,
// then (once) every assignment found in Service status.
func (c *Controller) ready(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.poolsDirty {
		if err := c.syncPools(ctx); err != nil {
			return err
		}
		c.poolsDirty = false
	}
	if !c.restored {
		if err := c.restore(ctx); err != nil {
			return err
		}
		c.restored = true
	}
	return nil
}

func (c *Controller) markPoolsDirty() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poolsDirty = true
}
