package bgp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/prometheus/client_golang/prometheus"
)

// The test binary doubles as the announcer process the lab tests start in
// node namespaces (gobgp dials from its own goroutines, so the announcer
// must be a process in the node's namespace).
func TestMain(m *testing.M) {
	if os.Getenv("PIER_BGP_TEST_ROLE") == "announcer" {
		if err := runAnnouncer(os.Getenv("PIER_BGP_TEST_CONFIG")); err != nil {
			fmt.Println("announcer error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperConfig is what the announcer process reads, again on SIGHUP.
type helperConfig struct {
	RouterID  netip.Addr
	WarnAfter time.Duration
	Peers     []bgp.Peer
	Paths     []bgp.Path
	// ManyPaths adds manyPaths(ManyPaths) to Paths: a large list without
	// a large file to read.
	ManyPaths int
}

func readHelperConfig(file string) (*helperConfig, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var c helperConfig
	return &c, json.Unmarshal(b, &c)
}

func runAnnouncer(file string) error {
	cfg, err := readHelperConfig(file)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	a, err := bgp.New(bgp.Options{RouterID: cfg.RouterID, Logger: log, WarnAfter: cfg.WarnAfter, Metrics: bgp.NewMetrics(reg)})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	apply := func(c *helperConfig) error {
		start := time.Now()
		if err := a.SetPeers(ctx, c.Peers); err != nil {
			return err
		}
		paths := append(c.Paths, manyPaths(c.ManyPaths)...)
		if err := a.SetPaths(ctx, paths); err != nil {
			return err
		}
		fmt.Printf("applied %d peers %d paths in %s\n", len(c.Peers), len(paths), time.Since(start))
		return nil
	}
	if err := apply(cfg); err != nil {
		return err
	}
	for {
		select {
		case <-hup:
			c, err := readHelperConfig(file)
			if err == nil {
				err = apply(c)
			}
			if err != nil {
				fmt.Println("apply error:", err)
			}
		case <-usr1:
			st, _ := json.Marshal(a.Status())
			fmt.Printf("status: %s\n", st)
		case <-usr2:
			m, _ := json.Marshal(readMem(reg))
			fmt.Printf("mem: %s\n", m)
		case err := <-errc:
			fmt.Println("announcer stopped")
			return err
		}
	}
}

// helperMem is what the announcer process reports on SIGUSR2: its Go heap
// after a collection and its metrics' samples (name{labels} -> value).
type helperMem struct {
	HeapInuse uint64
	Metrics   map[string]float64
}

func readMem(reg *prometheus.Registry) helperMem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := helperMem{HeapInuse: ms.HeapInuse, Metrics: map[string]float64{}}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out.Metrics[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out.Metrics[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
