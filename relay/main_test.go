package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the relay and backend processes of the lab
// test (lab_test.go), and the backend and client processes of the scale
// benchmarks (scale_bench_test.go).
func TestMain(m *testing.M) {
	switch os.Getenv("PIER_RELAY_TEST_ROLE") {
	case "backend":
		runBackendRole()
	case "relay":
		runRelayRole()
	case "echo":
		runEchoRole()
	case "clients":
		runClientsRole()
	case "churn":
		runChurnRole()
	}
	os.Exit(m.Run())
}

// runBackendRole serves BACKEND_NAME on BACKEND_ADDR (TCP and UDP).
func runBackendRole() {
	name, addr := os.Getenv("BACKEND_NAME"), os.Getenv("BACKEND_ADDR")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fail(err)
	}
	b := &testBackend{Backend: Backend{Name: name, ProxyProtocol: os.Getenv("BACKEND_PROXY") == "1"}}
	go serveNamedTCP(ln, b)
	go serveNamedUDP(pc, b)
	fmt.Println("backend: ready")
	select {}
}

// runRelayRole relays RELAY_ADDR (TCP and UDP, one port) to RELAY_BACKENDS
// ("name=addr,..."), on the same port. RELAY_KERNEL=1 turns the kernel data
// path on (and, once ready, removes the tables an earlier relay left); the backends named
// in RELAY_PROXY (comma-separated) get PROXY v2 headers. RELAY_NOFILE sets
// RLIMIT_NOFILE; RELAY_MAX_TCP and RELAY_MAX_TCP_SOURCE the TCP limits.
func runRelayRole() {
	addr := netip.MustParseAddrPort(os.Getenv("RELAY_ADDR"))
	proxied := strings.Split(os.Getenv("RELAY_PROXY"), ",")
	var bs []Backend
	for _, kv := range strings.Split(os.Getenv("RELAY_BACKENDS"), ",") {
		name, a, _ := strings.Cut(kv, "=")
		bs = append(bs, Backend{Name: name, Addr: netip.MustParseAddr(a), ProxyProtocol: slices.Contains(proxied, name)})
	}
	kernel := os.Getenv("RELAY_KERNEL") == "1"
	if n, err := strconv.ParseUint(os.Getenv("RELAY_NOFILE"), 10, 64); err == nil {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
			fail(err)
		}
	}
	maxTCP, _ := strconv.Atoi(os.Getenv("RELAY_MAX_TCP"))
	maxTCPSource, _ := strconv.Atoi(os.Getenv("RELAY_MAX_TCP_SOURCE"))
	tables := NewKernelTables() // one per process
	r, err := New(Options{Backends: bs, Kernel: KernelOptions{Enabled: kernel, Tables: tables}, MaxTCPConns: maxTCP, MaxTCPConnsPerSource: maxTCPSource, Listeners: []Listener{
		{Name: "tcp", Protocol: TCP, Addr: addr},
		{Name: "udp", Protocol: UDP, Addr: addr},
	}, Logger: slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-r.Ready()
		if kernel {
			if err := tables.RemoveStale(DefaultKernelTablePrefix); err != nil {
				fail(err)
			}
		}
		fmt.Println("relay: ready")
	}()
	if err := r.Run(ctx); err != nil {
		fail(err)
	}
	os.Exit(0)
}

func fail(err error) {
	fmt.Println("error:", err)
	os.Exit(1)
}
