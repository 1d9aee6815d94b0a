package members

import (
	"errors"
	"io"
	"log"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

func validOptions() Options {
	return Options{
		Name:      "node1",
		BindAddr:  netip.MustParseAddr("198.51.100.11"),
		SecretKey: testKey,
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string // substring of the error; "" for none
	}{
		{"valid", func(*Options) {}, ""},
		{"insecure", func(o *Options) { o.SecretKey, o.Insecure = nil, true }, ""},
		{"24 byte key", func(o *Options) { o.SecretKey = make([]byte, 24) }, ""},
		{"32 byte key", func(o *Options) { o.SecretKey = make([]byte, 32) }, ""},
		{"peers", func(o *Options) { o.Peers = []string{"198.51.100.12", "198.51.100.13:7000", "2001:db8:100::11"} }, ""},
		{"no name", func(o *Options) { o.Name = "" }, "name"},
		{"bad name", func(o *Options) { o.Name = "Node_1" }, "name"},
		{"no address", func(o *Options) { o.BindAddr = netip.Addr{} }, "bind address"},
		{"unspecified address", func(o *Options) { o.BindAddr = netip.IPv4Unspecified() }, "bind address"},
		{"port", func(o *Options) { o.BindPort = 70000 }, "bind port"},
		{"no key", func(o *Options) { o.SecretKey = nil }, "secret key missing"},
		{"key and insecure", func(o *Options) { o.Insecure = true }, "both"},
		{"short key", func(o *Options) { o.SecretKey = []byte("short") }, "5 bytes"},
		{"big meta", func(o *Options) { o.Meta = make([]byte, 513) }, "meta"},
		{"host name peer", func(o *Options) { o.Peers = []string{"node2"} }, `peer "node2"`},
		{"probe timeout", func(o *Options) { o.Timers.ProbeTimeout = time.Second }, "probe timeout"},
		{"negative", func(o *Options) { o.Timers.GossipInterval = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.edit(&o)
			_, err := New(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("New accepted it, want an error about %q", tt.want)
			case !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want):
				t.Fatalf("New: %v, want ErrInvalid about %q", err, tt.want)
			}
		})
	}
}

func TestTimerDefaults(t *testing.T) {
	got := Timers{ProbeInterval: time.Second, ProbeTimeout: 300 * time.Millisecond}.withDefaults(FastLAN())
	want := FastLAN()
	want.ProbeInterval, want.ProbeTimeout = time.Second, 300*time.Millisecond
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("withDefaults (-want +got):\n%s", diff)
	}
	for name, tm := range map[string]Timers{"FastLAN": FastLAN(), "LAN": LAN()} {
		if err := tm.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestFastLANConfirmsSuspicions: memberlist waits for SuspicionMult-2
// members to confirm a suspicion, none when fewer are left to confirm
// (state.go, suspectNode). FastLAN must ask for at least one from 3 nodes
// up, so that one member's suspicion alone lasts the long timeout, and
// must hand memberlist that timeout.
func TestFastLANConfirmsSuspicions(t *testing.T) {
	tm := FastLAN()
	for _, n := range []int{3, 5, 10} {
		k := tm.SuspicionMult - 2
		if n-2 < k {
			k = 0
		}
		if k < 1 {
			t.Errorf("%d nodes: SuspicionMult %d asks for %d confirmations, want at least 1", n, tm.SuspicionMult, k)
		}
	}
	if tm.SuspicionMaxTimeoutMult < 2 {
		t.Errorf("SuspicionMaxTimeoutMult %d: a lone suspicion would last no longer than a confirmed one", tm.SuspicionMaxTimeoutMult)
	}
	c := memberlist.DefaultLANConfig()
	tm.apply(c)
	got := []int{c.SuspicionMult, c.SuspicionMaxTimeoutMult}
	if diff := cmp.Diff([]int{tm.SuspicionMult, tm.SuspicionMaxTimeoutMult}, got); diff != "" {
		t.Errorf("apply: memberlist's SuspicionMult, SuspicionMaxTimeoutMult (-want +got):\n%s", diff)
	}
}

func TestMessagesAreNotCompressed(t *testing.T) {
	m, err := New(validOptions())
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.config(0, nil, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	if c.EnableCompression {
		t.Error("memberlist compresses every message: half an idle member's CPU")
	}
}

func TestParsePeers(t *testing.T) {
	got, err := parsePeers([]string{"198.51.100.12", "[2001:db8:100::12]:7000", "::ffff:198.51.100.13", "bad", ""}, 7946)
	want := []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.12:7946"),
		netip.MustParseAddrPort("[2001:db8:100::12]:7000"),
		netip.MustParseAddrPort("198.51.100.13:7946"),
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("parsePeers (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `""`) {
		t.Errorf("parsePeers error = %v, want both bad entries named", err)
	}
}

func TestSetPeersReportsBadEntries(t *testing.T) {
	m, err := New(validOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = m.SetPeers([]string{"198.51.100.12", "node3"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPeers: %v, want ErrInvalid", err)
	}
	if diff := cmp.Diff([]string{"198.51.100.12:7946"}, m.missing()); diff != "" {
		t.Errorf("join targets (-want +got):\n%s", diff)
	}
	if err := m.SetMeta(make([]byte, 600)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMeta(600 bytes): %v, want ErrInvalid", err)
	}
	if got := m.Live(); len(got) != 0 {
		t.Errorf("Live before Run = %v, want none", got)
	}
}

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4", slog.LevelDebug, "Stream connection from=1.2.3.4"},
		{"[INFO] memberlist: Marking node3 as failed", slog.LevelInfo, "Marking node3 as failed"},
		{"[WARN] memberlist: Was able to connect", slog.LevelWarn, "Was able to connect"},
		{"[ERR] memberlist: Failed to decrypt", slog.LevelError, "Failed to decrypt"},
		{"[ERR] Failed to shutdown transport", slog.LevelError, "Failed to shutdown transport"},
		{"no level", slog.LevelInfo, "no level"},
	}
	for _, tt := range tests {
		level, msg := parseLine(tt.line)
		if diff := cmp.Diff([]any{tt.level, tt.msg}, []any{level, msg}); diff != "" {
			t.Errorf("parseLine(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
}

func TestLogWriter(t *testing.T) {
	var b strings.Builder
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	w := logWriter{slog.New(h)}
	if _, err := w.Write([]byte("[WARN] memberlist: one\n[DEBUG] memberlist: two\n")); err != nil {
		t.Fatal(err)
	}
	want := "level=WARN msg=one\nlevel=DEBUG msg=two\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}
