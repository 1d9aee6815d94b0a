// Package daemon holds the start-up steps every Pier command shares: the
// JSON slog logger its --log-level names, and flag defaults taken from the
// environment a Pod spec sets.
package daemon

import (
	"log/slog"
	"os"
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
