package members

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// The test binary doubles as a speaker-like member process in a lab host,
// so a member can be killed for real (SIGKILL) or stopped with SIGTERM.
const (
	roleEnv  = "PIER_MEMBERS_TEST_ROLE"
	nameEnv  = "PIER_MEMBERS_NAME"
	addrEnv  = "PIER_MEMBERS_ADDR"
	peersEnv = "PIER_MEMBERS_PEERS"
	keyEnv   = "PIER_MEMBERS_KEY"
	// profileEnv names the member process's Timers (Profile); default
	// testTimers.
	profileEnv = "PIER_MEMBERS_PROFILE"
	// PIER_MEMBERS_LOG=debug prints every member's log to stderr.
	logEnv = "PIER_MEMBERS_LOG"
)

var (
	testKey  = []byte("pier-test-key-16")
	otherKey = []byte("other-key-16byte")
)

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "member" {
		os.Exit(runMemberProcess())
	}
	os.Exit(m.Run())
}

// runMemberProcess runs one member until SIGTERM (graceful leave) or
// SIGKILL.
func runMemberProcess() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	key, err := hex.DecodeString(os.Getenv(keyEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	timers := testTimers()
	if p := os.Getenv(profileEnv); p != "" {
		if timers, err = Profile(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	m, err := New(Options{
		Name:      os.Getenv(nameEnv),
		BindAddr:  netip.MustParseAddr(os.Getenv(addrEnv)),
		Peers:     strings.Split(os.Getenv(peersEnv), ","),
		SecretKey: key,
		Timers:    timers,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err == nil {
		fmt.Println("member starting")
		err = m.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("member stopped")
	return 0
}

// testTimers: FastLAN, re-joining more often so partition tests are short.
func testTimers() Timers {
	t := FastLAN()
	t.RejoinInterval = 300 * time.Millisecond
	return t
}

func testLogger() *slog.Logger {
	if os.Getenv(logEnv) == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testLab is n hosts (node1..noden, 198.51.100.11...) on one switch.
type testLab struct {
	tb    testing.TB
	lab   *lab.Lab
	hosts []*lab.Host
}

func newTestLab(tb testing.TB, n int) *testLab {
	tb.Helper()
	prereq.Root(tb)
	prereq.Tools(tb, "ip")
	l := lab.ForTest(tb)
	sw, err := l.AddSwitch("l2")
	if err != nil {
		tb.Fatal(err)
	}
	tl := &testLab{tb: tb, lab: l}
	for i := 1; i <= n; i++ {
		h, err := l.AddHost(fmt.Sprintf("node%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		v4, _ := lab.NodeAddrs(i)
		if err := sw.Connect(h, "eth1", v4); err != nil {
			tb.Fatal(err)
		}
		tl.hosts = append(tl.hosts, h)
	}
	return tl
}

// addr is host i's (0-based) segment address.
func (l *testLab) addr(i int) netip.Addr {
	v4, _ := lab.NodeAddrs(i + 1)
	return v4.Addr()
}

func (l *testLab) peers() []string {
	var out []string
	for i := range l.hosts {
		out = append(out, l.addr(i).String())
	}
	return out
}

func (l *testLab) names(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, l.hosts[i].Name)
	}
	slices.Sort(out)
	return out
}

// running is a member run in-process, its sockets in its host's namespace.
type running struct {
	*Members
	cancel context.CancelFunc
	done   chan error
}

func (l *testLab) start(i int, edit func(*Options)) *running {
	l.tb.Helper()
	h := l.hosts[i]
	opts := Options{
		Name:      h.Name,
		BindAddr:  l.addr(i),
		Peers:     l.peers(),
		SecretKey: testKey,
		Timers:    testTimers(),
		Logger:    testLogger(),
		Namespace: h.Do,
	}
	if edit != nil {
		edit(&opts)
	}
	m, err := New(opts)
	if err != nil {
		l.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Members: m, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	l.tb.Cleanup(func() { _ = r.stop() })
	return r
}

// stop leaves gracefully and waits for Run to return.
func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // stop is idempotent
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: Run did not return 10 s after cancel", r.name)
	}
}

// startProcess runs member i as a child process.
func (l *testLab) startProcess(i int, key []byte, env ...string) *lab.Process {
	l.tb.Helper()
	h := l.hosts[i]
	p, err := h.Start("env", slices.Concat([]string{
		roleEnv + "=member", nameEnv + "=" + h.Name, addrEnv + "=" + l.addr(i).String(),
		peersEnv + "=" + strings.Join(l.peers(), ","), keyEnv + "=" + hex.EncodeToString(key)},
		env, []string{os.Args[0]})...)
	if err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() { _ = p.Stop() })
	return p
}

// waitLive waits until every member in ms lists exactly want.
func waitLive(tb testing.TB, timeout time.Duration, want []string, ms ...*running) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, m := range ms {
			if !slices.Equal(m.Live(), want) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, m := range ms {
				if diff := cmp.Diff(want, m.Live()); diff != "" {
					tb.Errorf("%s: live members after %s (-want +got):\n%s", m.name, timeout, diff)
				}
			}
			tb.FailNow()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// timeGone polls every millisecond until no member in ms lists name, and
// returns, per member, the time from start until it stopped listing it.
func timeGone(tb testing.TB, start time.Time, timeout time.Duration, name string, ms ...*running) []time.Duration {
	tb.Helper()
	out := make([]time.Duration, len(ms))
	left := len(ms)
	for left > 0 {
		for i, m := range ms {
			if out[i] == 0 && !slices.Contains(m.Live(), name) {
				out[i] = time.Since(start)
				left--
			}
		}
		if time.Since(start) > timeout {
			tb.Fatalf("%s still listed %s after %s (gone at: %v)", ms[0].name, name, timeout, out)
		}
		time.Sleep(time.Millisecond)
	}
	return out
}
