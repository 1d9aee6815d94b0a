package speaker

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/vip"
)

// New takes every part the loop uses and refuses what would fail later:
// a missing part, an announcer that is a nil pointer (it would panic at
// the first pass, not at start), a negative period.
func TestNewValidates(t *testing.T) {
	valid := func() Options {
		return Options{NodeName: "node1", Namespace: "pier-system", Reader: fake.NewClientBuilder().Build(),
			Synced: func() bool { return true }, Members: NewFakeMembers("node1"), L2: &FakeL2{}}
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*Options)
		wantErr string // "" for valid
	}{
		{"minimal", func(*Options) {}, ""},
		{"every part", func(o *Options) {
			o.BGP, o.VIP, o.Clock = &FakeBGP{}, &FakeVIP{}, clocktesting.NewFakeClock(time.Now())
		}, ""},
		{"no node name", func(o *Options) { o.NodeName = "" }, "node name"},
		{"no namespace", func(o *Options) { o.Namespace = "" }, "namespace"},
		{"no reader", func(o *Options) { o.Reader = nil }, "reader"},
		{"no synced", func(o *Options) { o.Synced = nil }, "synced"},
		{"no members", func(o *Options) { o.Members = nil }, "membership"},
		{"no l2 announcer", func(o *Options) { o.L2 = nil }, "l2 announcer"},
		{"nil members pointer", func(o *Options) { o.Members = (*FakeMembers)(nil) }, "membership"},
		{"nil l2 pointer", func(o *Options) { o.L2 = (*FakeL2)(nil) }, "l2 announcer"},
		{"nil bgp pointer", func(o *Options) { o.BGP = (*bgp.Announcer)(nil) }, "bgp announcer"},
		{"nil vip pointer", func(o *Options) { o.VIP = (*vip.VIPs)(nil) }, "vip setter"},
		{"nil clock pointer", func(o *Options) { o.Clock = (*clocktesting.FakeClock)(nil) }, "clock"},
		{"negative resync", func(o *Options) { o.Resync = -time.Second }, "resync"},
		{"negative status period", func(o *Options) { o.StatusEvery = -time.Second }, "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.mutate(&o)
			s, err := New(o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("New accepted it, want an error about %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("New: %v, want an error about %q", err, tc.wantErr)
			}
			if tc.wantErr != "" {
				return
			}
			if s.opts.Clock == nil || s.opts.Resync <= 0 || s.opts.StatusEvery <= 0 || s.opts.Interfaces == nil {
				t.Errorf("defaults not set: clock %v resync %v status %v", s.opts.Clock, s.opts.Resync, s.opts.StatusEvery)
			}
			if o.Clock == nil {
				if _, ok := s.opts.Clock.(clock.RealClock); !ok {
					t.Errorf("default clock %T, want clock.RealClock", s.opts.Clock)
				}
			}
		})
	}
}
