// Package loadgen is Pier's load generator for relay benchmarks: UDP flows
// whose datagrams an echo server returns (packets/s, loss, round-trip
// latency per datagram), TCP bulk throughput over several connections, and
// TCP request/response latency at a fixed rate. Sink is the matching echo
// and discard server. Results are a Result, written as JSON by
// cmd/pier-loadgen.
//
// Every datagram and request carries a Header (flow, sequence number, send
// time), so an echo is matched to the flow that sent it and its round trip
// measured without keeping per-packet state; echoes that are not ours or come
// back on another flow are counted as invalid.
//
// UDP has three ways to load the target:
//   - Rate > 0: open loop at a fixed total rate (one paced sender, one
//     receiver per flow): the right load for latency, since a slow target
//     does not slow the sender down.
//   - Rate 0, Window > 0: closed loop, at most Window datagrams in flight
//     over all flows (a sliding window per flow): the peak the target
//     sustains without loss from queue overflow.
//   - Rate 0, Window 0: open loop as fast as the sender goes.
//
// Datagrams are sent and received in batches (sendmmsg/recvmmsg through
// golang.org/x/net's ipv4/ipv6 PacketConn). The paced sender sleeps with
// nanosleep on a locked thread with a 1 us timer slack: time.Sleep wakes
// about 1 ms late on Linux, which would turn an even rate into 1 ms bursts.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Mode is what the generator does.
type Mode string

// Modes.
const (
	UDP     Mode = "udp"      // datagrams to a UDP echo server
	TCPBulk Mode = "tcp-bulk" // stream to a TCP discard server
	TCPRR   Mode = "tcp-rr"   // fixed-size requests to a TCP echo server
)

// Defaults for zero Options fields.
const (
	DefaultSize        = 64
	DefaultDuration    = 5 * time.Second
	DefaultBatch       = 32
	DefaultLossTimeout = 50 * time.Millisecond
	DefaultChunk       = 128 << 10
)

// Options configures a run.
type Options struct {
	Mode   Mode
	Target netip.AddrPort
	// Flows is the number of UDP sockets (distinct source ports) or TCP
	// connections; default 1.
	Flows int
	// Size is the UDP payload or TCP request size in bytes, at least
	// HeaderSize; default 64. TCPBulk writes Chunk bytes at a time instead.
	Size int
	// Rate is the total datagrams or requests per second; 0: as fast as
	// the window allows.
	Rate float64
	// Window bounds the datagrams (UDP) or requests (TCPRR) in flight over
	// all flows when Rate is 0; 0 with UDP: no bound. Each flow gets an
	// equal share, at least 1.
	Window int
	// Duration of the measured run (after every flow has had one echo back).
	Duration time.Duration
	// Batch is the most datagrams per sendmmsg/recvmmsg; default 32.
	Batch int
	// LossTimeout: an echo later than this counts as lost (closed loop
	// resends after it; every mode waits this long for the last echoes).
	LossTimeout time.Duration
	// Chunk is TCPBulk's write size; default 128 KiB.
	Chunk  int
	Logger *slog.Logger
}

// Result is a run's outcome.
type Result struct {
	Mode      Mode    `json:"mode"`
	Target    string  `json:"target"`
	Flows     int     `json:"flows"`
	Size      int     `json:"size,omitempty"`
	Rate      float64 `json:"rate,omitempty"`
	Window    int     `json:"window,omitempty"`
	DurationS float64 `json:"duration_s"`
	// Sent and Received count datagrams or requests (UDP, TCPRR); Lost is
	// Sent minus Received; Invalid counts echoes that were not ours or
	// came back on another flow; Missed counts sends the paced sender
	// wrote off because it fell behind; SendErrors counts failed sends.
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"`
	Lost       uint64 `json:"lost"`
	Invalid    uint64 `json:"invalid"`
	Missed     uint64 `json:"missed"`
	SendErrors uint64 `json:"send_errors"`
	// SentPPS and PPS are datagrams or requests sent and echoed per second
	// of the measured run (echoes arriving after it are not counted here).
	SentPPS float64 `json:"sent_pps,omitempty"`
	PPS     float64 `json:"pps,omitempty"`
	// Bytes is what TCPBulk delivered (acknowledged by the server closing
	// after it read everything); MBps is Bytes per second in 10^6 bytes.
	Bytes   int64    `json:"bytes,omitempty"`
	MBps    float64  `json:"mb_per_s,omitempty"`
	Latency *Summary `json:"latency,omitempty"`
}

// Generator runs one load.
type Generator struct {
	opts   Options
	log    *slog.Logger
	missed uint64 // written off by the paced sender
}

// New validates opts; it opens nothing.
func New(opts Options) (*Generator, error) {
	opts = withDefaults(opts)
	if err := validate(opts); err != nil {
		return nil, err
	}
	return &Generator{opts: opts, log: opts.Logger.With("component", "loadgen")}, nil
}

func withDefaults(o Options) Options {
	if o.Flows == 0 {
		o.Flows = 1
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.LossTimeout == 0 {
		o.LossTimeout = DefaultLossTimeout
	}
	if o.Chunk == 0 {
		o.Chunk = DefaultChunk
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func validate(o Options) error {
	switch o.Mode {
	case UDP, TCPBulk, TCPRR:
	default:
		return fmt.Errorf("loadgen: mode %q: want %s, %s or %s", o.Mode, UDP, TCPBulk, TCPRR)
	}
	if !o.Target.IsValid() || o.Target.Port() == 0 {
		return errors.New("loadgen: target: want addr:port")
	}
	switch {
	case o.Flows < 1 || o.Flows > 65535:
		return fmt.Errorf("loadgen: %d flows: want 1 to 65535", o.Flows)
	case o.Size < HeaderSize || o.Size > 65507:
		return fmt.Errorf("loadgen: size %d: want %d to 65507", o.Size, HeaderSize)
	case o.Rate < 0 || o.Window < 0 || o.Duration < 0 || o.Batch < 1 || o.Batch > 1024 || o.LossTimeout < 0 || o.Chunk < 1:
		return fmt.Errorf("loadgen: negative rate, window, duration, loss timeout or chunk, or batch outside 1-1024")
	case o.Mode == TCPRR && o.Rate == 0 && o.Window == 0:
		return errors.New("loadgen: tcp-rr needs a rate or a window")
	}
	return nil
}

// perFlow is a flow's share of the window, at least 1.
// Run generates the load until Duration has passed (plus up to LossTimeout
// for the last echoes) or ctx ends, and returns the figures. A Generator
// runs once.
func (g *Generator) Run(ctx context.Context) (Result, error) {
	switch g.opts.Mode {
	case UDP:
		return g.runUDP(ctx)
	case TCPBulk:
		return g.runBulk(ctx)
	default:
		return g.runRR(ctx)
	}
}

func perFlow(window, flows int) int {
	return max(1, (window+flows-1)/flows)
}

func (g *Generator) result(d time.Duration) Result {
	o := g.opts
	r := Result{Mode: o.Mode, Target: o.Target.String(), Flows: o.Flows, Rate: o.Rate, Window: o.Window, DurationS: d.Seconds()}
	if o.Mode != TCPBulk {
		r.Size = o.Size
	}
	return r
}

// tally is what one UDP flow or TCP connection counts.
type tally struct {
	sent, recv atomic.Uint64
	// Written only by the flow's receiving (inRun, invalid) or sending
	// (errs) goroutine; read once the run is over.
	inRun, invalid, errs uint64
	hist                 *Histogram
}

// summarize sums the flows' tallies into the run's Result.
func (g *Generator) summarize(ts []*tally) Result {
	res := g.result(g.opts.Duration)
	h := NewHistogram()
	var inRun uint64
	for _, t := range ts {
		res.Sent += t.sent.Load()
		res.Received += t.recv.Load()
		res.Invalid += t.invalid
		res.SendErrors += t.errs
		inRun += t.inRun
		h.Merge(t.hist)
	}
	res.Missed = g.missed
	res.finish(h, inRun)
	return res
}

// finish fills in the derived figures.
func (r *Result) finish(h *Histogram, inRun uint64) {
	if r.Sent > r.Received {
		r.Lost = r.Sent - r.Received
	}
	if r.DurationS > 0 {
		r.SentPPS = float64(r.Sent) / r.DurationS
		r.PPS = float64(inRun) / r.DurationS
		r.MBps = float64(r.Bytes) / r.DurationS / 1e6
	}
	if h != nil {
		s := h.Summary()
		r.Latency = &s
	}
}
