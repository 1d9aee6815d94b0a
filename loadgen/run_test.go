package loadgen

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// startSink runs a sink on loopback for the test.
func startSink(t *testing.T) *Sink {
	t.Helper()
	s, err := NewSink(SinkOptions{UDP: "127.0.0.1:0", TCPEcho: "127.0.0.1:0", TCPDiscard: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sink: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("sink ended: %v", err)
	}
	return s
}

func run(t *testing.T, opts Options) Result {
	t.Helper()
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := g.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v (%+v)", err, res)
	}
	return res
}

// TestAgainstSink runs every mode against a real sink on loopback: the
// figures must be consistent (echoes of our own datagrams only, latency
// counted for every echo), not fast.
func TestAgainstSink(t *testing.T) {
	s := startSink(t)
	udp, echo, discard := s.Addr(PartUDP), s.Addr(PartTCPEcho), s.Addr(PartTCPDiscard)
	const d = 300 * time.Millisecond
	tests := []struct {
		name string
		opts Options
	}{
		{"udp closed loop", Options{Mode: UDP, Target: udp, Flows: 4, Window: 16, Duration: d}},
		{"udp paced", Options{Mode: UDP, Target: udp, Flows: 3, Size: 1200, Rate: 2000, Duration: d, LossTimeout: time.Second}},
		{"udp unpaced", Options{Mode: UDP, Target: udp, Flows: 2, Duration: d}},
		{"tcp-rr paced", Options{Mode: TCPRR, Target: echo, Flows: 2, Rate: 1000, Duration: d, LossTimeout: time.Second}},
		{"tcp-rr window", Options{Mode: TCPRR, Target: echo, Flows: 2, Window: 4, Duration: d}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.opts)
			if r.Received == 0 || r.PPS <= 0 || r.Invalid != 0 {
				t.Fatalf("received %d (%.0f/s), invalid %d", r.Received, r.PPS, r.Invalid)
			}
			if r.Received > r.Sent || r.Lost != r.Sent-r.Received {
				t.Errorf("sent %d, received %d, lost %d: inconsistent", r.Sent, r.Received, r.Lost)
			}
			if r.Latency == nil || r.Latency.Count != r.Received || r.Latency.P50US <= 0 || r.Latency.P99US < r.Latency.P50US {
				t.Errorf("latency %+v for %d echoes", r.Latency, r.Received)
			}
			if tc.opts.Rate > 0 {
				// A paced sender's sends plus what a loaded machine made it
				// write off are the schedule's count.
				want := uint64(tc.opts.Rate * d.Seconds())
				if got := r.Sent + r.Missed + r.SendErrors; got != want {
					t.Errorf("sent %d + missed %d, want %d at %.0f/s", r.Sent, r.Missed, want, tc.opts.Rate)
				}
				if r.Lost != 0 {
					t.Errorf("lost %d of %d on loopback at a low rate", r.Lost, r.Sent)
				}
			}
		})
	}
	t.Run("tcp-bulk", func(t *testing.T) {
		r := run(t, Options{Mode: TCPBulk, Target: discard, Flows: 2, Duration: d})
		if r.Bytes < DefaultChunk || r.MBps <= 0 || r.DurationS < d.Seconds() {
			t.Errorf("bulk moved %d bytes (%.1f MB/s) in %.3fs", r.Bytes, r.MBps, r.DurationS)
		}
	})
}

// TestNoEcho: a target that answers nothing fails before measuring.
func TestNoEcho(t *testing.T) {
	s := startSink(t)
	g, err := New(Options{Mode: UDP, Target: s.Addr(PartTCPEcho), Duration: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no echo") {
		t.Errorf("err = %v, want no echo", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Mode: UDP, Target: mustAddrPort("127.0.0.1:9")}
	for name, mod := range map[string]func(*Options){
		"mode":      func(o *Options) { o.Mode = "icmp" },
		"target":    func(o *Options) { o.Target = mustAddrPort("127.0.0.1:0") },
		"small":     func(o *Options) { o.Size = HeaderSize - 1 },
		"flows":     func(o *Options) { o.Flows = -1 },
		"rate":      func(o *Options) { o.Rate = -1 },
		"batch":     func(o *Options) { o.Batch = 5000 },
		"rr window": func(o *Options) { o.Mode = TCPRR },
	} {
		o := ok
		mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error for %+v", name, o)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("valid options: %v", err)
	}
	if _, err := NewSink(SinkOptions{}); err == nil {
		t.Error("empty sink options: no error")
	}
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
