// Package daemon holds the start-up steps every Pier command shares: the
// JSON slog logger its --log-level names, and flag defaults taken from the
// environment a Pod spec sets, and how a daemon runs its parts together.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
)

// Logger writes JSON records to stderr at level ("debug", "info", "warn",
// "error"; anything else means info).
func Logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// Env returns the environment variable key, or def when it is unset.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// RunAll runs every function until ctx ends or one fails; then it cancels
// the rest and waits for them. It returns their errors joined.
func RunAll(ctx context.Context, log *slog.Logger, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Go(func() {
			if errs[i] = fn(ctx); errs[i] != nil {
				log.Error("part stopped", "err", errs[i])
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
