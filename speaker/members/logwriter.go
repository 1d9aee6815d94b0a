package members

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log.Logger lines ("[DEBUG] memberlist: ...")
// into slog records at the matching level.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		level, msg := parseLine(string(bytes.TrimRight(line, "\r\n")))
		if msg != "" {
			w.log.Log(context.Background(), level, msg)
		}
	}
	return len(p), nil
}

var levels = []struct {
	tag   string
	level slog.Level
}{
	{"[DEBUG] ", slog.LevelDebug},
	{"[TRACE] ", slog.LevelDebug},
	{"[INFO] ", slog.LevelInfo},
	{"[WARN] ", slog.LevelWarn},
	{"[ERR] ", slog.LevelError},
	{"[ERROR] ", slog.LevelError},
}

func parseLine(line string) (slog.Level, string) {
	level := slog.LevelInfo
	for _, l := range levels {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			level, line = l.level, rest
			break
		}
	}
	if rest, ok := strings.CutPrefix(line, "memberlist: "); ok {
		line = rest
	}
	return level, line
}
