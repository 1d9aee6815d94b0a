package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/pier-lb/pier/relay"
)

// instance is one running relay.Relay of a Relay.
type instance struct {
	cfg      Config
	backends []relay.Backend
	r        *relay.Relay
	cancel   context.CancelFunc
	done     chan struct{} // closed when Run returned (drained)
	err      error
}

// exited reports whether the relay stopped on its own (a listener failed).
func (i *instance) exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// stop ends the relay; it drains in the background until done closes.
func (i *instance) stop() { i.cancel() }

// relayMetrics are one Relay's relay metrics, labelled relay="ns/name", kept
// while the node serves the Relay (instances that replace each other share
// them).
type relayMetrics struct {
	m   *relay.Metrics
	reg prometheus.Registerer
}

func newRelayMetrics(reg prometheus.Registerer, key Key) relayMetrics {
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"relay": key.String()}, reg)
	return relayMetrics{m: relay.NewMetrics(wrapped), reg: wrapped}
}

func (m relayMetrics) unregister() { m.m.Unregister(m.reg) }

// bindRetries and bindBackoff bound how long a new instance waits for the
// ports of the instance it replaces to close (they close as soon as that one
// is stopped): two seconds.
const (
	bindRetries = 40
	bindBackoff = 50 * time.Millisecond
)

// start runs a relay for want until ctx ends, and returns once its
// listeners are open, or with the error that kept them shut. A busy port
// (still held by the instance being replaced) is tried up to tries times.
func start(ctx context.Context, want Want, metrics *relay.Metrics, kernel relay.KernelTables, log *slog.Logger, clk clock.WithTicker, tries int) (*instance, error) {
	var err error
	for n := range tries {
		if n > 0 {
			select {
			case <-ctx.Done():
				return nil, err
			case <-clk.After(bindBackoff):
			}
		}
		var i *instance
		if i, err = startOnce(ctx, want, metrics, kernel, log, clk); err == nil {
			return i, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, err
}

func startOnce(ctx context.Context, want Want, metrics *relay.Metrics, kernel relay.KernelTables, log *slog.Logger, clk clock.WithTicker) (*instance, error) {
	opts := want.Config.RelayOptions(want.Backends)
	opts.Metrics, opts.Logger, opts.Clock, opts.VIPs = metrics, log, clk, want.VIPs
	opts.Kernel.Tables = kernel
	r, err := relay.New(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	i := &instance{cfg: want.Config, backends: want.Backends, r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(i.done)
		i.err = r.Run(ctx)
	}()
	select {
	case <-r.Ready():
		return i, nil
	case <-i.done:
		cancel()
		if i.err == nil {
			i.err = ctx.Err()
		}
		return nil, fmt.Errorf("open listeners: %w", i.err)
	}
}

// setBackends hands a changed backend set to the running relay and reports
// whether it changed.
func (i *instance) setBackends(bs []relay.Backend) (bool, error) {
	if slices.EqualFunc(bs, i.backends, relay.Backend.Equal) {
		return false, nil
	}
	if err := i.r.SetBackends(bs); err != nil {
		return false, err
	}
	i.backends = bs
	return true, nil
}
