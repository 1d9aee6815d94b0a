package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ListenAddr is the default listen address of a daemon's metrics and
// health server: the address in the environment variable env (the node's
// for hostNetwork Pods, the Pod's otherwise) and port, or loopback when it
// is unset. Never all addresses: on a node, the wildcard would also answer
// on every LoadBalancer address the node holds.
func ListenAddr(env string, port int) string {
	host := os.Getenv(env)
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Health is a set of named checks behind /healthz. The zero value has none
// (healthy). Safe for concurrent use.
type Health struct {
	mu     sync.Mutex
	checks map[string]func() error
}

// Add registers check under name (replacing one of that name).
func (h *Health) Add(name string, check func() error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checks == nil {
		h.checks = map[string]func() error{}
	}
	h.checks[name] = check
}

// Check runs every check; the error names each failing one.
func (h *Health) Check() error {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	checks := h.checks
	h.mu.Unlock()
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		if err := checks[n](); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// MetricsHandler serves /metrics from reg and /healthz from h (nil:
// always healthy): 200 "ok", or 503 with one line per failing check.
func MetricsHandler(reg *prometheus.Registry, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if h != nil {
			if err := h.Check(); err != nil {
				http.Error(w, strings.TrimSpace(err.Error()), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

// ServeMetrics serves MetricsHandler on addr until ctx ends: one address,
// or several separated by commas ("0": off). It only logs a failure:
// metrics are no reason to stop a daemon.
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry, h *Health, log *slog.Logger) {
	if addr == "0" {
		return
	}
	handler := MetricsHandler(reg, h)
	var wg sync.WaitGroup
	for _, a := range strings.Split(addr, ",") {
		srv := &http.Server{
			Addr: strings.TrimSpace(a), Handler: handler,
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second,
		}
		wg.Go(func() {
			go func() { <-ctx.Done(); srv.Close() }()
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "addr", srv.Addr, "err", err)
			}
		})
	}
	wg.Wait()
}

// APICheck is the health of a daemon that works from an API cache but
// must go on through an API server outage: healthy once synced, and
// healthy while the API server cannot be reached (outage mode: the daemon
// works from its saved state, and a restart would not help). Unhealthy
// when the cache has not synced although the API server answers (no
// permission, a stuck informer): a restart or an alert is due. ping asks
// the API server; it is called only while not synced.
func APICheck(synced func() bool, ping func() error) func() error {
	return func() error {
		if synced() {
			return nil
		}
		if err := ping(); err != nil {
			return nil // outage mode
		}
		return errors.New("API cache not synced although the API server answers")
	}
}

// APIPing returns a ping of the API server at cfg (GET /readyz, 2 s), for
// APICheck.
func APIPing(cfg *rest.Config) (func() error, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("API ping: %w", err)
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	}, nil
}
