package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// The test binary doubles as the relay and backend processes of the lab
// test (lab_test.go).
func TestMain(m *testing.M) {
	switch os.Getenv("PIER_RELAY_TEST_ROLE") {
	case "backend":
		runBackendRole()
	case "relay":
		runRelayRole()
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
	b := &testBackend{Backend: Backend{Name: name}}
	go serveNamedTCP(ln, b)
	go serveNamedUDP(pc, b)
	fmt.Println("backend: ready")
	select {}
}

// runRelayRole relays RELAY_ADDR (TCP and UDP, one port) to RELAY_BACKENDS
// ("name=addr,..."), on the same port.
func runRelayRole() {
	addr := netip.MustParseAddrPort(os.Getenv("RELAY_ADDR"))
	var bs []Backend
	for _, kv := range strings.Split(os.Getenv("RELAY_BACKENDS"), ",") {
		name, a, _ := strings.Cut(kv, "=")
		bs = append(bs, Backend{Name: name, Addr: netip.MustParseAddr(a)})
	}
	r, err := New(Options{Backends: bs, Listeners: []Listener{
		{Name: "tcp", Protocol: TCP, Addr: addr},
		{Name: "udp", Protocol: UDP, Addr: addr},
	}})
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-r.Ready()
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
