package relaybench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pier-lb/pier/loadgen"
)

// The benchmarks measure every path in turn, several rounds, interleaved
// (direct, pier, nginx, socat, direct, pier, ...) so that the shared
// machine's changing load hits every path alike; they report the median
// over rounds and its spread (-min/-max). Environment:
//
//	PIER_BENCH_ROUNDS    rounds per figure (default 3)
//	PIER_BENCH_DURATION  length of one measurement (default 2s)
//	PIER_BENCH_WINDOW    datagrams in flight for the UDP peak (default 128)
//	PIER_BENCH_PPROF     pier-relay --pprof-addr on the relay host (e.g. 198.18.10.1:6060)
//	PIER_BENCH_CPUPROFILE  with PIER_BENCH_PPROF: write pier-relay's CPU
//	                     profile during each UDP peak run to this path
//	                     (suffixed with the configuration and round)

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

func rounds() int { return envInt("PIER_BENCH_ROUNDS", 3) }

func measureFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("PIER_BENCH_DURATION")); err == nil && d > 0 {
		return d
	}
	return 2 * time.Second
}

// figures are one measurement's metrics by unit.
type figures map[string]float64

// measureAll runs measure for every kind, rounds times interleaved, and
// returns each kind's figures per round.
func measureAll(b *testing.B, kinds []Kind, measure func(ctx context.Context, k Kind) (figures, error)) map[Kind][]figures {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out := map[Kind][]figures{}
	var loads []string
	for range rounds() {
		loads = append(loads, loadavg())
		for _, k := range kinds {
			f, err := measure(ctx, k)
			if err != nil {
				b.Fatalf("%s: %v", k, err)
			}
			out[k] = append(out[k], f)
		}
	}
	b.Logf("nproc %d, load average before each round: %s", runtime.NumCPU(), strings.Join(loads, "; "))
	return out
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}

// spread is the median, minimum and maximum of xs.
func spread(xs []float64) (med, lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

func column(fs []figures, unit string) []float64 {
	var xs []float64
	for _, f := range fs {
		xs = append(xs, f[unit])
	}
	return xs
}

// report gives each kind a sub-benchmark with the medians of its figures,
// and the main unit's spread and ratio to nginx.
func report(b *testing.B, res map[Kind][]figures, main string) {
	b.Helper()
	nginx, _, _ := spread(column(res[Nginx], main))
	var line []string
	for _, k := range Kinds {
		fs, ok := res[k]
		if !ok {
			continue
		}
		b.Run(string(k), func(b *testing.B) {
			units := make([]string, 0, len(fs[0]))
			for u := range fs[0] {
				units = append(units, u)
			}
			slices.Sort(units)
			for _, u := range units {
				med, lo, hi := spread(column(fs, u))
				b.ReportMetric(med, u)
				if u == main {
					b.ReportMetric(lo, u+"-min")
					b.ReportMetric(hi, u+"-max")
					if nginx > 0 && k != Nginx {
						b.ReportMetric(med/nginx, "x-nginx")
					}
					line = append(line, fmt.Sprintf("%s %.4g [%.4g-%.4g]", k, med, lo, hi))
				}
			}
		})
	}
	b.Logf("%s: %s", main, strings.Join(line, ", "))
}

// peaks remembers pier's UDP peak (64 B, 64 flows) for the latency
// benchmark.
var peaks = map[string]float64{}

func peakKey(size, flows int) string { return fmt.Sprintf("%dB/%dflows", size, flows) }

func udpPeak(b *testing.B, bn *Bench, kinds []Kind, size, flows int) map[Kind][]figures {
	window := strconv.Itoa(envInt("PIER_BENCH_WINDOW", 128))
	round := 0
	return measureAll(b, kinds, func(ctx context.Context, k Kind) (figures, error) {
		if k == Pier {
			round++
			if path := os.Getenv("PIER_BENCH_CPUPROFILE"); path != "" {
				done := profile(ctx, b, bn, fmt.Sprintf("%s.%dB-%dflows-%d", path, size, flows, round))
				defer func() { <-done }()
			}
		}
		cpu0, err := bn.RelayCPU(ctx)
		if err != nil {
			return nil, err
		}
		r, err := bn.Loadgen(ctx, loadgen.UDP, Target(k, UDPEcho), "--flows", strconv.Itoa(flows),
			"--size", strconv.Itoa(size), "--window", window, "--duration", measureFor().String())
		if err != nil {
			return nil, err
		}
		if r.Invalid != 0 {
			return nil, fmt.Errorf("%d invalid echoes", r.Invalid)
		}
		cpu1, err := bn.RelayCPU(ctx)
		if err != nil {
			return nil, err
		}
		f := figures{"pkts/s": r.PPS, "loss-%": lossPct(r), "rtt-p50-us": r.Latency.P50US}
		if k != Direct && k != PierKernel && r.Received > 0 {
			// Both directions of every echoed datagram. (The kernel data
			// path forwards in softirq context, which no relay process is
			// charged for: like Direct, it has no such figure.)
			f["relay-cpu-us/pkt"] = float64(cpu1-cpu0) / 1e3 / float64(2*r.Received)
		}
		return f, nil
	})
}

func lossPct(r loadgen.Result) float64 {
	if r.Sent == 0 {
		return 0
	}
	return 100 * float64(r.Lost) / float64(r.Sent)
}

// BenchmarkUDPPeak is the most echoed datagrams per second each path
// sustains with a window of datagrams in flight (closed loop): one flow,
// and 64 flows (relays keep state per flow).
func BenchmarkUDPPeak(b *testing.B) {
	bn := bench(b)
	for _, size := range []int{64, 1200} {
		for _, flows := range []int{1, 64} {
			b.Run(peakKey(size, flows), func(b *testing.B) {
				res := udpPeak(b, bn, Kinds, size, flows)
				peaks[peakKey(size, flows)], _, _ = spread(column(res[Pier], "pkts/s"))
				report(b, res, "pkts/s")
			})
		}
	}
}

// BenchmarkUDPLatency is the round-trip time of 64-byte datagrams over 64
// flows at half of pier's peak rate (open loop, paced), on every path;
// added-* is a relay's figure minus the direct path's in the same round.
func BenchmarkUDPLatency(b *testing.B) {
	bn := bench(b)
	const size, flows = 64, 64
	peak, ok := peaks[peakKey(size, flows)]
	if !ok {
		med, _, _ := spread(column(udpPeak(b, bn, []Kind{Pier}, size, flows)[Pier], "pkts/s"))
		peak = med
	}
	rate := peak / 2
	b.Logf("rate %.0f datagrams/s (half of pier's peak %.0f)", rate, peak)
	res := measureAll(b, Kinds, func(ctx context.Context, k Kind) (figures, error) {
		r, err := bn.Loadgen(ctx, loadgen.UDP, Target(k, UDPEcho), "--flows", strconv.Itoa(flows),
			"--size", strconv.Itoa(size), "--rate", strconv.FormatFloat(rate, 'f', 0, 64),
			"--duration", measureFor().String(), "--loss-timeout", "200ms")
		if err != nil {
			return nil, err
		}
		return latencyFigures(r), nil
	})
	addDirect(res)
	report(b, res, "p99-us")
}

func latencyFigures(r loadgen.Result) figures {
	return figures{"p50-us": r.Latency.P50US, "p99-us": r.Latency.P99US, "p999-us": r.Latency.P999US,
		"loss-%": lossPct(r), "sent/s": r.SentPPS}
}

// addDirect adds each relay's latency over the direct path's in the same
// round.
func addDirect(res map[Kind][]figures) {
	for _, k := range Relays {
		for i, f := range res[k] {
			d := res[Direct][i]
			f["added-p50-us"] = f["p50-us"] - d["p50-us"]
			f["added-p99-us"] = f["p99-us"] - d["p99-us"]
		}
	}
}

// BenchmarkTCPLatency is the round-trip time of 64-byte requests over 8
// connections at 5,000 requests/s (open loop).
func BenchmarkTCPLatency(b *testing.B) {
	bn := bench(b)
	res := measureAll(b, TCPKinds, func(ctx context.Context, k Kind) (figures, error) {
		r, err := bn.Loadgen(ctx, loadgen.TCPRR, Target(k, TCPEcho), "--flows", "8", "--rate", "5000",
			"--duration", measureFor().String(), "--loss-timeout", "200ms")
		if err != nil {
			return nil, err
		}
		return latencyFigures(r), nil
	})
	addDirect(res)
	report(b, res, "p99-us")
}

// BenchmarkTCPThroughput is bulk TCP from the client to the backend: iperf3
// with one connection, and pier-loadgen with four connections to the
// discard server (bytes counted once the server has read them).
func BenchmarkTCPThroughput(b *testing.B) {
	bn := bench(b)
	b.Run("iperf3/1conn", func(b *testing.B) {
		res := measureAll(b, TCPKinds, func(ctx context.Context, k Kind) (figures, error) {
			mbps, err := bn.Iperf3(ctx, Target(k, Iperf), measureFor(), 1)
			return figures{"MB/s": mbps}, err
		})
		report(b, res, "MB/s")
	})
	b.Run("loadgen/4conns", func(b *testing.B) {
		res := measureAll(b, TCPKinds, func(ctx context.Context, k Kind) (figures, error) {
			cpu0, err := bn.RelayCPU(ctx)
			if err != nil {
				return nil, err
			}
			r, err := bn.Loadgen(ctx, loadgen.TCPBulk, Target(k, TCPDiscard), "--flows", "4", "--duration", measureFor().String())
			if err != nil {
				return nil, err
			}
			cpu1, err := bn.RelayCPU(ctx)
			f := figures{"MB/s": r.MBps}
			if k != Direct && r.Bytes > 0 {
				f["relay-cpu-ms/GB"] = float64(cpu1-cpu0) / 1e6 / (float64(r.Bytes) / 1e9)
			}
			return f, err
		})
		report(b, res, "MB/s")
	})
}

// profile fetches pier-relay's CPU profile over the measurement (from the
// client host, which reaches --pprof-addr) and writes it to path.
func profile(ctx context.Context, b *testing.B, bn *Bench, path string) <-chan struct{} {
	done := make(chan struct{})
	addr := os.Getenv("PIER_BENCH_PPROF")
	secs := max(int(measureFor().Seconds())-1, 1)
	go func() {
		defer close(done)
		hc := http.Client{Transport: &http.Transport{DialContext: bn.Client.Dial}}
		resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
		if err != nil {
			b.Errorf("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			b.Errorf("profile: %v", err)
		}
	}()
	return done
}
