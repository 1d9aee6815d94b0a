// Command pier-loadgen generates load for relay benchmarks and prints a JSON
// summary (loadgen.Result), or serves as the benchmark's backend:
//
//	pier-loadgen udp --target 198.18.0.1:16384 --flows 64 --size 64 --window 256 --duration 5s
//	pier-loadgen udp --target 198.18.0.1:16384 --flows 64 --rate 20000
//	pier-loadgen tcp-bulk --target 198.18.0.1:8444 --flows 4
//	pier-loadgen tcp-rr --target 198.18.0.1:8443 --flows 8 --rate 5000
//	pier-loadgen sink --udp 198.18.1.2:16384 --tcp-echo 198.18.1.2:8443 --tcp-discard 198.18.1.2:8444
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/pier-lb/pier/internal/daemon"
	"github.com/pier-lb/pier/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pier-loadgen udp|tcp-bulk|tcp-rr|sink [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	mode, args := os.Args[1], os.Args[2:]
	if mode == "sink" {
		os.Exit(sink(ctx, args))
	}
	os.Exit(generate(ctx, loadgen.Mode(mode), args))
}

func generate(ctx context.Context, mode loadgen.Mode, args []string) int {
	fs := flag.NewFlagSet(string(mode), flag.ExitOnError)
	opts := loadgen.Options{Mode: mode}
	target := fs.String("target", "", "addr:port to load")
	fs.IntVar(&opts.Flows, "flows", 1, "UDP source ports or TCP connections")
	fs.IntVar(&opts.Size, "size", loadgen.DefaultSize, "UDP payload or TCP request bytes")
	fs.Float64Var(&opts.Rate, "rate", 0, "total datagrams or requests per second (0: as fast as the window allows)")
	fs.IntVar(&opts.Window, "window", 0, "datagrams or requests in flight when --rate is 0 (0: unbounded, UDP only)")
	fs.DurationVar(&opts.Duration, "duration", loadgen.DefaultDuration, "measured run")
	fs.IntVar(&opts.Batch, "batch", loadgen.DefaultBatch, "datagrams per sendmmsg/recvmmsg")
	fs.DurationVar(&opts.LossTimeout, "loss-timeout", loadgen.DefaultLossTimeout, "an echo later than this is lost")
	fs.IntVar(&opts.Chunk, "chunk", loadgen.DefaultChunk, "tcp-bulk write size")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	_ = fs.Parse(args)
	opts.Logger = daemon.Logger(*level)
	t, err := netip.ParseAddrPort(*target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pier-loadgen: --target %q: %v\n", *target, err)
		return 2
	}
	opts.Target = t
	g, err := loadgen.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pier-loadgen:", err)
		return 2
	}
	res, err := g.Run(ctx)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pier-loadgen:", err)
		return 1
	}
	return 0
}

func sink(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	var opts loadgen.SinkOptions
	fs.StringVar(&opts.UDP, "udp", "", "UDP echo addr:port")
	fs.StringVar(&opts.TCPEcho, "tcp-echo", "", "TCP echo addr:port")
	fs.StringVar(&opts.TCPDiscard, "tcp-discard", "", "TCP discard addr:port")
	fs.IntVar(&opts.Workers, "workers", 2, "UDP sockets sharing the port")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	_ = fs.Parse(args)
	opts.Logger = daemon.Logger(*level)
	s, err := loadgen.NewSink(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pier-loadgen:", err)
		return 2
	}
	if err := s.Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pier-loadgen:", err)
		return 1
	}
	return 0
}
