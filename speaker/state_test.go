package speaker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// stateEnv is a synced speaker with one pool, one advertisement and one
// Service at 198.51.100.10, saving its state in file.
func stateEnv(t *testing.T, file string) (*Speaker, *bytes.Buffer, *prometheus.Registry) {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, v1alpha1.AddToScheme} {
		mustDo(t, add(scheme))
	}
	svc := lbService("web", "198.51.100.10")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&v1alpha1.IPAddressPool{ObjectMeta: metaNS("a", "pier-system"), Spec: v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.51.100.0/26"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metaNS("all", "pier-system")},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}},
		&svc,
	).Build()
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s, err := New(Options{
		NodeName: "node1", Namespace: "pier-system",
		Reader: c, Synced: func() bool { return true },
		Members: NewFakeMembers("node1"), L2: &FakeL2{},
		StateFile: file,
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		Metrics:   NewMetrics(reg),
	})
	mustDo(t, err)
	return s, &logs, reg
}

func stateWriteFailures(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	mustDo(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "pier_speaker_state_write_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no metric pier_speaker_state_write_failures_total")
	return 0
}

// A state file that cannot be written (its directory is a regular file:
// this fails for root too) does not stop the speaker: it applies what the
// API says, says which file it cannot write and why, once, and counts every
// failed write. When the file can be written again, it is.
func TestUnwritableStateFile(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "state-dir")
	mustDo(t, os.WriteFile(blocker, []byte("a file where a directory should be"), 0o600))
	file := filepath.Join(blocker, "speaker-state.json")
	s, logs, reg := stateEnv(t, file)
	ctx := context.Background()

	s.sync(ctx)
	s.sync(ctx)
	if diff := cmp.Diff([]string{"198.51.100.10"}, targetAddrs(s.targets)); diff != "" {
		t.Errorf("targets with an unwritable state file (-want +got):\n%s", diff)
	}
	out := logs.String()
	if strings.Contains(out, "reading the API cache failed") {
		t.Errorf("a state-file write failure is reported as an API read failure:\n%s", out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "file="+file) && strings.Contains(l, "not a directory") && strings.Contains(l, "level=WARN") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Errorf("want one warning naming %s and the reason, got %d:\n%s", file, len(lines), out)
	}
	if got := stateWriteFailures(t, reg); got != 2 {
		t.Errorf("pier_speaker_state_write_failures_total = %v after two failed writes, want 2", got)
	}

	mustDo(t, os.Remove(blocker))
	s.sync(ctx)
	st, err := loadState(file)
	mustDo(t, err)
	if diff := cmp.Diff([]string{"198.51.100.10"}, targetAddrs(st.Targets)); diff != "" {
		t.Errorf("state written once possible (-want +got):\n%s", diff)
	}
	if got := stateWriteFailures(t, reg); got != 2 {
		t.Errorf("pier_speaker_state_write_failures_total = %v after a good write, want still 2", got)
	}
	if !strings.Contains(logs.String(), "state file written again") {
		t.Errorf("no line saying the state file is written again:\n%s", logs)
	}
}

// A corrupt state file is not a reason to stop: the speaker starts from
// nothing, says which file and why, then announces what the API says and
// replaces the file.
func TestCorruptStateFileStartsFromAPI(t *testing.T) {
	for name, content := range map[string]string{
		"not json":    "\x00\x01garbage",
		"truncated":   `{"targets":[{"Addr":"198.51.100.`,
		"bad address": `{"targets":[{"Addr":"nowhere"}],"peers":[]}`,
		"wrong type":  `{"targets":{"a":1}}`,
		"empty":       "",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "speaker-state.json")
			mustDo(t, os.WriteFile(file, []byte(content), 0o600))
			s, logs, _ := stateEnv(t, file)
			s.restore()
			if len(s.targets) != 0 {
				t.Errorf("targets from a corrupt file: %v", targetAddrs(s.targets))
			}
			out := logs.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "file="+file) || !strings.Contains(out, "starting from the API") {
				t.Errorf("want a warning naming %s, the reason and what happens instead:\n%s", file, out)
			}
			s.sync(context.Background())
			if diff := cmp.Diff([]string{"198.51.100.10"}, targetAddrs(s.targets)); diff != "" {
				t.Errorf("targets from the API (-want +got):\n%s", diff)
			}
			raw, err := os.ReadFile(file)
			mustDo(t, err)
			if !json.Valid(raw) {
				t.Errorf("state file not replaced: %q", raw)
			}
		})
	}
}

// A directory where the state file should be fails every write for the
// same reason: one warning naming the file, every failure counted. (The
// temporary file's random name in the error made each failure look new.)
func TestStateFileIsADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	mustDo(t, os.Mkdir(file, 0o755))
	s, logs, reg := stateEnv(t, file)
	ctx := context.Background()
	for range 3 {
		s.sync(ctx)
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "file="+file) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Errorf("want one warning naming %s, got %d:\n%s", file, len(lines), logs)
	}
	if got := stateWriteFailures(t, reg); got != 3 {
		t.Errorf("pier_speaker_state_write_failures_total = %v after three failed writes, want 3", got)
	}
}

// With StateEvery set, a burst of changes writes the state file once: the
// first change at once, the next ones when StateEvery has passed since,
// and what is still unwritten when the speaker stops.
func TestStateFileDebounced(t *testing.T) {
	file := filepath.Join(t.TempDir(), "speaker-state.json")
	s, _, _ := stateEnv(t, file)
	clk := clocktesting.NewFakeClock(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	s.opts.Clock, s.opts.StateEvery = clk, 5*time.Second
	ctx := context.Background()
	saved := func() []string {
		st, err := loadState(file)
		mustDo(t, err)
		return targetAddrs(st.Targets)
	}
	s.sync(ctx)
	if diff := cmp.Diff([]string{"198.51.100.10"}, saved()); diff != "" {
		t.Errorf("first write (-want +got):\n%s", diff)
	}
	c := s.opts.Reader.(client.Client)
	for _, a := range []string{"198.51.100.11", "198.51.100.12"} {
		svc := lbService("web-"+a, a)
		mustDo(t, c.Create(ctx, &svc))
		s.APIChanged()
		s.sync(ctx)
	}
	if diff := cmp.Diff([]string{"198.51.100.10"}, saved()); diff != "" {
		t.Errorf("within StateEvery of the last write (-want +got):\n%s", diff)
	}
	clk.Step(5 * time.Second)
	s.sync(ctx)
	want := []string{"198.51.100.10", "198.51.100.11", "198.51.100.12"}
	if diff := cmp.Diff(want, saved()); diff != "" {
		t.Errorf("StateEvery after the last write (-want +got):\n%s", diff)
	}

	svc := lbService("web-last", "198.51.100.13")
	mustDo(t, c.Create(ctx, &svc))
	s.APIChanged()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	eventually(t, "the change read", func() bool { return !s.apiChanged.Load() })
	cancel()
	mustDo(t, <-done)
	if diff := cmp.Diff(append(want, "198.51.100.13"), saved()); diff != "" {
		t.Errorf("after the speaker stopped (-want +got):\n%s", diff)
	}
}
