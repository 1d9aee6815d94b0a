package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The scale benchmarks run the relay in the test process and its backends
// and clients in child processes (roles of the test binary, main_test.go),
// so the test process's memory, goroutines, descriptors and CPU are the
// relay's alone.

// scaleBackends is the number of echo backend processes.
const scaleBackends = 3

// benchCount reads a count from env, or def.
func benchCount(b *testing.B, env string, def int) int {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive count", env, s)
	}
	return n
}

// child is a role of the test binary, driven by lines on its stdin and
// stdout; it exits when its stdin closes.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild(b *testing.B, role string, env ...string) *child {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "PIER_RELAY_TEST_ROLE="+role)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	return c
}

// ask sends line (if not empty) and returns the child's next line's fields,
// which must start with want.
func (c *child) ask(b *testing.B, line, want string) []string {
	b.Helper()
	if line != "" {
		if _, err := io.WriteString(c.in, line+"\n"); err != nil {
			b.Fatal(err)
		}
	}
	if !c.out.Scan() {
		b.Fatalf("%s: child ended: %v", want, c.out.Err())
	}
	f := strings.Fields(c.out.Text())
	if len(f) == 0 || f[0] != want {
		b.Fatalf("child said %q, want %s", c.out.Text(), want)
	}
	return f[1:]
}

func atoi(b *testing.B, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// echoBackends starts the echo backend processes.
func echoBackends(b *testing.B) []Backend {
	var bs []Backend
	for i := range scaleBackends {
		f := startChild(b, "echo").ask(b, "", "echo")
		tcp, udp := uint16(atoi(b, f[0])), uint16(atoi(b, f[1]))
		bs = append(bs, Backend{Name: fmt.Sprintf("echo%d", i), Addr: netip.MustParseAddr("127.0.0.1"),
			Ports: map[string]uint16{"tcp": tcp, "udp": udp}, HealthPort: tcp})
	}
	return bs
}

// procSample is the test process's state at one time.
type procSample struct {
	heap, stack, rss uint64
	goroutines, fds  int
	cpu              time.Duration
}

func sampleProc(b *testing.B) procSample {
	// Two collections and a pause: pooled splice pipes are closed by
	// finalizers, which run after the second.
	runtime.GC()
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return procSample{heap: ms.HeapAlloc, stack: ms.StackInuse, rss: vmRSS(b), goroutines: runtime.NumGoroutine(), fds: len(fds), cpu: selfCPU(b)}
}

func vmRSS(b *testing.B) uint64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for l := range strings.Lines(string(s)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func selfCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPer reports the growth from before to after per flow.
func reportPer(b *testing.B, before, after procSample, flows int, unit string) {
	n := float64(flows)
	b.ReportMetric(float64(int64(after.heap)-int64(before.heap))/n, "heap-B/"+unit)
	b.ReportMetric(float64(int64(after.stack)-int64(before.stack))/n, "stack-B/"+unit)
	b.ReportMetric(float64(int64(after.rss)-int64(before.rss))/n, "rss-B/"+unit)
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/"+unit)
	b.ReportMetric(float64(after.fds-before.fds)/n, "fds/"+unit)
}

// checkFileLimit fails the benchmark when the relay cannot hold flows with
// perFlow descriptors each.
func checkFileLimit(b *testing.B, flows, perFlow int) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if need := uint64(flows*perFlow + 200); need > lim.Cur {
		b.Fatalf("%d flows need about %d descriptors, RLIMIT_NOFILE is %d (hard %d): raise it (root with CAP_SYS_RESOURCE) or hold fewer", flows, need, lim.Cur, lim.Max)
	}
}

// BenchmarkTCPRelayHeld holds PIER_BENCH_CONNS (default 3,000) TCP
// connections through the relay, from a client process to three echo
// backend processes, each having carried one round trip; then makes one
// more round trip on every connection. It reports the relay process's
// growth per connection (heap after a GC, RSS, goroutines, descriptors)
// and failed-conns, the connections whose last round trip failed. Run it
// with -benchtime 1x.
func BenchmarkTCPRelayHeld(b *testing.B) {
	n := benchCount(b, "PIER_BENCH_CONNS", 3000)
	checkFileLimit(b, n, 2) // client and backend sockets (pipes only while data moves)
	bs := echoBackends(b)
	r := startRelay(b, Options{Backends: bs, MaxTCPConns: n, MaxTCPConnsPerSource: n,
		Listeners: []Listener{{Name: "tcp", Protocol: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}})
	for range b.N {
		before := sampleProc(b)
		start := time.Now()
		c := startChild(b, "clients", "SCALE_PROTO=tcp", "SCALE_TARGET="+r.Addr("tcp").String(), "SCALE_N="+strconv.Itoa(n))
		f := c.ask(b, "", "held")
		opened := time.Since(start)
		if failed := atoi(b, f[1]); failed > 0 {
			b.Fatalf("%d of %d connections failed to open", failed, n)
		}
		after := sampleProc(b)
		reportPer(b, before, after, n, "conn")
		f = c.ask(b, "check", "checked")
		b.ReportMetric(float64(atoi(b, f[1])), "failed-conns")
		b.ReportMetric(float64(n)/opened.Seconds(), "opened/s")
		c.in.Close()
	}
}

// BenchmarkUDPRelayHeld holds PIER_BENCH_FLOWS (default 10,000) UDP flows
// through the relay, one per client socket of a client process, to three
// echo backend processes; then makes one more round trip on every flow. It
// reports the relay process's growth per flow as BenchmarkTCPRelayHeld
// does. Run it with -benchtime 1x.
func BenchmarkUDPRelayHeld(b *testing.B) {
	n := benchCount(b, "PIER_BENCH_FLOWS", 10000)
	checkFileLimit(b, n, 1)
	bs := echoBackends(b)
	r := startRelay(b, Options{Backends: bs, MaxFlows: n,
		Listeners: []Listener{{Name: "udp", Protocol: UDP, Addr: netip.MustParseAddrPort("127.0.0.1:0")}}})
	for range b.N {
		before := sampleProc(b)
		c := startChild(b, "clients", "SCALE_PROTO=udp", "SCALE_TARGET="+r.Addr("udp").String(), "SCALE_N="+strconv.Itoa(n))
		f := c.ask(b, "", "held")
		after := sampleProc(b)
		if failed := atoi(b, f[1]); failed > 0 {
			b.Fatalf("%d of %d flows got no reply", failed, n)
		}
		reportPer(b, before, after, n, "flow")
		f = c.ask(b, "check", "checked")
		b.ReportMetric(float64(atoi(b, f[1])), "failed-flows")
		c.in.Close()
	}
}

// BenchmarkNewFlows has a client process open PIER_BENCH_NEW (default
// 20,000) new flows through the relay, 16 at a time, to three echo backend
// processes: for tcp a connection carrying one round trip, then closed; for
// udp a datagram and its reply from a new source port. Each new flow's
// backend is a Maglev lookup. It reports flows/s and the relay process's
// CPU per flow. Run it with -benchtime 1x.
func BenchmarkNewFlows(b *testing.B) {
	n := benchCount(b, "PIER_BENCH_NEW", 20000)
	for _, proto := range []string{"tcp", "udp"} {
		b.Run(proto, func(b *testing.B) {
			bs := echoBackends(b)
			// UDP flows expire after a second, so the table holds only the last
			// second's flows (each a socket and a port).
			r := startRelay(b, Options{Backends: bs, UDPIdleTimeout: time.Second, MaxFlows: 20000,
				Listeners: []Listener{{Name: proto, Protocol: Protocol(strings.ToUpper(proto)), Addr: netip.MustParseAddrPort("127.0.0.1:0")}}})
			for range b.N {
				before := sampleProc(b)
				c := startChild(b, "churn", "SCALE_PROTO="+proto, "SCALE_TARGET="+r.Addr(proto).String(), "SCALE_N="+strconv.Itoa(n))
				f := c.ask(b, "", "done")
				cpu := selfCPU(b) - before.cpu
				secs, err := strconv.ParseFloat(f[2], 64)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/secs, "flows/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "relay-cpu-us/flow")
				b.ReportMetric(float64(atoi(b, f[1])), "failed-flows")
				c.in.Close()
			}
		})
	}
}

// runEchoRole echoes TCP and UDP on loopback ports it prints, until its
// stdin closes.
func runEchoRole() {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fail(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	fmt.Println("echo", ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// scaleWorkers is how many flows a client process opens at a time.
const scaleWorkers = 16

// roundTrip writes 8 bytes on c and reads them back.
func roundTrip(c net.Conn) error {
	out, in := []byte("pier0123"), make([]byte, 8)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(out); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, in); err != nil {
		return err
	}
	if string(in) != string(out) {
		return fmt.Errorf("read %q, wrote %q", in, out)
	}
	return nil
}

// parallel runs fn(i) for i in [0, n) on scaleWorkers goroutines and
// returns how many failed.
func parallel(n int, fn func(int) error) int {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range scaleWorkers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "flow failed:", err)
					}
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// scaleEnv reads the client roles' SCALE_PROTO, SCALE_TARGET and SCALE_N.
func scaleEnv() (proto, target string, n int) {
	n, err := strconv.Atoi(os.Getenv("SCALE_N"))
	if err != nil {
		fail(err)
	}
	return os.Getenv("SCALE_PROTO"), os.Getenv("SCALE_TARGET"), n
}

// runClientsRole opens SCALE_N flows to SCALE_TARGET, one round trip each,
// and says "held <n> <failed>"; on "check" it makes one more round trip on
// each and says "checked <n> <failed>". It exits when its stdin closes.
func runClientsRole() {
	proto, target, n := scaleEnv()
	conns := make([]net.Conn, n)
	failed := parallel(n, func(i int) error {
		c, err := net.Dial(proto+"4", target)
		if err != nil {
			return err
		}
		conns[i] = c
		return roundTrip(c)
	})
	fmt.Println("held", n, failed)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		failed := parallel(n, func(i int) error {
			if conns[i] == nil {
				return fmt.Errorf("flow %d never opened", i)
			}
			return roundTrip(conns[i])
		})
		fmt.Println("checked", n, failed)
	}
	os.Exit(0)
}

// runChurnRole opens SCALE_N new flows to SCALE_TARGET, one round trip
// each, closing each after it, and says "done <n> <failed> <seconds>".
func runChurnRole() {
	proto, target, n := scaleEnv()
	start := time.Now()
	failed := parallel(n, func(int) error {
		c, err := net.Dial(proto+"4", target)
		if err != nil {
			return err
		}
		defer c.Close()
		return roundTrip(c)
	})
	fmt.Println("done", n, failed, time.Since(start).Seconds())
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
