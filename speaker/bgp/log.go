package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// gobgpLogger hands gobgp's logs to slog. It redacts every configured
// password, renames gobgp's keys to the project's vocabulary ("Key" is the
// peer address) and reports failed dials to onDialError.
type gobgpLogger struct {
	log         *slog.Logger
	onDialError func(addr string, err any)
	onPeerDown  func(addr string, reason any)
	// onPrefixLimit is called when gobgp closes a session because the
	// peer exceeded its prefix limit.
	onPrefixLimit func(addr string, family any)
	onPeerUp      func(addr string)

	mu      sync.RWMutex
	secrets map[string]int // password -> peers using it
}

var _ gobgplog.Logger = (*gobgpLogger)(nil)

func newGobgpLogger(l *slog.Logger, onDialError, onPeerDown func(string, any)) *gobgpLogger {
	return &gobgpLogger{log: l.With("from", "gobgp"), onDialError: onDialError, onPeerDown: onPeerDown, secrets: map[string]int{}}
}

func (g *gobgpLogger) addSecret(s string) {
	if s == "" {
		return
	}
	g.mu.Lock()
	g.secrets[s]++
	g.mu.Unlock()
}

func (g *gobgpLogger) removeSecret(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.secrets[s]--; g.secrets[s] <= 0 {
		delete(g.secrets, s)
	}
}

func (g *gobgpLogger) redact(s string) string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for secret := range g.secrets {
		s = strings.ReplaceAll(s, secret, "<redacted>")
	}
	return s
}

var keyNames = map[string]string{"Key": "peer_addr", "Topic": "topic", "Error": "err", "State": "state"}

func (g *gobgpLogger) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	if msg == "failed to connect" && g.onDialError != nil {
		if addr, ok := fields["Key"].(string); ok {
			g.onDialError(addr, g.redact(fmt.Sprint(fields["Error"])))
		}
	}
	if msg == "Peer Down" && g.onPeerDown != nil {
		if addr, ok := fields["Key"].(string); ok {
			g.onPeerDown(addr, g.redact(fmt.Sprint(fields["Reason"])))
		}
	}
	if msg == "Peer Up" && g.onPeerUp != nil {
		if addr, ok := fields["Key"].(string); ok {
			g.onPeerUp(addr)
		}
	}
	// gobgp logs "prefix limit reached" with a Pct field when a warning
	// threshold is crossed (Pier sets none) and without it when it closes
	// the session.
	if _, pct := fields["Pct"]; msg == "prefix limit reached" && !pct && g.onPrefixLimit != nil {
		if addr, ok := fields["Key"].(string); ok {
			g.onPrefixLimit(addr, fields["Family"])
		}
	}
	if !g.log.Enabled(context.Background(), level) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		name := k
		if n, ok := keyNames[k]; ok {
			name = n
		}
		if strings.Contains(strings.ToLower(k), "password") {
			continue
		}
		attrs = append(attrs, slog.String(name, g.redact(fmt.Sprint(fields[k]))))
	}
	g.log.LogAttrs(context.Background(), level, g.redact(msg), attrs...)
}

func (g *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	g.emit(slog.LevelError, msg, f)
	panic(msg)
}

// Fatal is logged as an error: gobgp's only Fatal is a failing gRPC
// listener, which the announcer never starts, and a library must not exit.
func (g *gobgpLogger) Fatal(msg string, f gobgplog.Fields) { g.emit(slog.LevelError, msg, f) }
func (g *gobgpLogger) Error(msg string, f gobgplog.Fields) { g.emit(slog.LevelError, msg, f) }
func (g *gobgpLogger) Warn(msg string, f gobgplog.Fields)  { g.emit(slog.LevelWarn, msg, f) }
func (g *gobgpLogger) Info(msg string, f gobgplog.Fields)  { g.emit(slog.LevelInfo, msg, f) }
func (g *gobgpLogger) Debug(msg string, f gobgplog.Fields) { g.emit(slog.LevelDebug, msg, f) }

// SetLevel is ignored: the slog handler decides.
func (g *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel is Debug so that gobgp reports failed dials (which it logs only
// at debug level); emit drops what the handler does not want.
func (g *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
