// Package relaybench measures Pier's relay data plane against nginx's stream
// module and socat on the same lab, with the same client, backend and run:
//
//	client 198.18.10.2 --- 198.18.10.1 relay host 198.18.11.1 --- 198.18.11.2 backend
//
// Each host is a network namespace joined by veth pairs. The backend runs
// pier-loadgen's sink (UDP echo, TCP echo, TCP discard) and iperf3 -s. The
// relay host runs all relays at once on separate ports (idle ones cost
// nothing) and forwards IP between its links, so the client also reaches the
// backend directly through the relay host's kernel: that direct path is the
// baseline every relay is compared with. pier-relay runs twice: in user
// space (Pier) and with the kernel data path for UDP (PierKernel, on a
// second address of the relay host, 198.18.10.3). The client runs
// pier-loadgen and iperf3 -c.
package relaybench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/loadgen"
)

// Kind is a path from the client to the backend.
type Kind string

// Kinds.
const (
	Direct Kind = "direct" // kernel forwarding on the relay host, no relay
	Pier   Kind = "pier"
	// PierKernel is pier-relay with the kernel data path (--kernel): its
	// UDP flows are placed by nftables DNAT; TCP is the same as Pier's.
	PierKernel Kind = "pier-kernel"
	Nginx      Kind = "nginx"
	Socat      Kind = "socat"
)

// Kinds lists every path, baseline first.
var Kinds = []Kind{Direct, Pier, PierKernel, Nginx, Socat}

// TCPKinds leaves out PierKernel, whose TCP path is Pier's.
var TCPKinds = []Kind{Direct, Pier, Nginx, Socat}

// Relays lists the relays.
var Relays = []Kind{Pier, PierKernel, Nginx, Socat}

// Service is one thing the backend serves.
type Service int

// Services and the backend's ports for them.
const (
	UDPEcho    Service = 16384
	TCPEcho    Service = 8443
	TCPDiscard Service = 8444
	Iperf      Service = 5201
)

var services = []Service{UDPEcho, TCPEcho, TCPDiscard, Iperf}

// portOffset moves each relay's listeners off the backend's ports.
var portOffset = map[Kind]uint16{Direct: 0, Pier: 0, Nginx: 1000, Socat: 2000}

// Addresses of the lab.
var (
	ClientAddr      = netip.MustParsePrefix("198.18.10.2/24")
	RelayClientAddr = netip.MustParsePrefix("198.18.10.1/24")
	// RelayKernelAddr is PierKernel's address, on the backend's ports.
	RelayKernelAddr = netip.MustParsePrefix("198.18.10.3/24")
	RelayServerAddr = netip.MustParsePrefix("198.18.11.1/24")
	BackendAddr     = netip.MustParsePrefix("198.18.11.2/24")
)

// NginxModule is the Debian stream module (libnginx-mod-stream).
const NginxModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// Options says where the binaries are.
type Options struct {
	Relay, Loadgen string // pier-relay and pier-loadgen
	// Dir holds nginx's configuration and logs.
	Dir string
	// GOMAXPROCS for pier-relay; default 2 (the benchmark machine's cores).
	GOMAXPROCS int
	// PprofAddr, when set, is passed to pier-relay's --pprof-addr (on the
	// relay host).
	PprofAddr string
}

// Bench is the built lab with everything running.
type Bench struct {
	Client, Relay, Backend *lab.Host
	opts                   Options
	procs                  map[Kind][]*lab.Process
}

// Target is where the client sends to reach svc over kind.
func Target(kind Kind, svc Service) netip.AddrPort {
	switch kind {
	case Direct:
		return netip.AddrPortFrom(BackendAddr.Addr(), uint16(svc))
	case PierKernel:
		return netip.AddrPortFrom(RelayKernelAddr.Addr(), uint16(svc))
	}
	return netip.AddrPortFrom(RelayClientAddr.Addr(), uint16(svc)+portOffset[kind])
}

// Build creates the three hosts in l and starts the backend and the relays.
func Build(ctx context.Context, l *lab.Lab, opts Options) (*Bench, error) {
	if opts.GOMAXPROCS == 0 {
		opts.GOMAXPROCS = 2
	}
	b := &Bench{opts: opts, procs: map[Kind][]*lab.Process{}}
	if err := b.topology(l); err != nil {
		return nil, err
	}
	if err := b.startBackend(ctx); err != nil {
		return nil, err
	}
	startKernel := func() error { return b.startPier(PierKernel) }
	for _, start := range []func() error{func() error { return b.startPier(Pier) }, startKernel, b.startNginx, b.startSocat} {
		if err := start(); err != nil {
			return nil, err
		}
	}
	for _, k := range TCPKinds {
		if err := b.waitTCP(ctx, Target(k, TCPEcho)); err != nil {
			return nil, fmt.Errorf("relaybench: %s not answering: %w%s", k, err, b.output(k))
		}
	}
	if err := b.waitUDP(ctx, Target(PierKernel, UDPEcho)); err != nil {
		return nil, fmt.Errorf("relaybench: %s not answering: %w%s", PierKernel, err, b.output(PierKernel))
	}
	return b, nil
}

func (b *Bench) topology(l *lab.Lab) error {
	var err error
	if b.Client, err = l.AddHost("client"); err != nil {
		return err
	}
	if b.Relay, err = l.AddHost("relay"); err != nil {
		return err
	}
	if b.Backend, err = l.AddHost("backend"); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return l.ConnectHosts(b.Client, "eth0", b.Relay, "eth0") },
		func() error { return l.ConnectHosts(b.Relay, "eth1", b.Backend, "eth0") },
		func() error { return b.Client.AddAddr("eth0", ClientAddr) },
		func() error { return b.Relay.AddAddr("eth0", RelayClientAddr) },
		func() error { return b.Relay.AddAddr("eth0", RelayKernelAddr) },
		func() error { return b.Relay.AddAddr("eth1", RelayServerAddr) },
		func() error { return b.Backend.AddAddr("eth0", BackendAddr) },
		func() error { return b.Relay.EnableForwarding() },
		func() error { return b.Client.AddRoute(BackendAddr.Masked(), RelayClientAddr.Addr()) },
		func() error { return b.Backend.AddRoute(ClientAddr.Masked(), RelayServerAddr.Addr()) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("relaybench: topology: %w", err)
		}
	}
	return nil
}

func (b *Bench) startBackend(ctx context.Context) error {
	be := BackendAddr.Addr().String()
	addr := func(s Service) string { return netip.AddrPortFrom(BackendAddr.Addr(), uint16(s)).String() }
	sink, err := b.Backend.Start(b.opts.Loadgen, "sink", "--udp", addr(UDPEcho), "--tcp-echo", addr(TCPEcho), "--tcp-discard", addr(TCPDiscard))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sink.WaitOutput(wctx, loadgen.SinkReady); err != nil {
		return fmt.Errorf("relaybench: sink: %w", err)
	}
	iperf, err := b.Backend.Start("iperf3", "-s", "-B", be, "-p", strconv.Itoa(int(Iperf)))
	if err != nil {
		return err
	}
	b.procs[Direct] = []*lab.Process{sink, iperf}
	return nil
}

// startPier runs pier-relay for kind Pier (every service, on the wildcard
// address) or PierKernel (--kernel, the UDP echo only, on RelayKernelAddr).
func (b *Bench) startPier(kind Kind) error {
	args := []string{"GOMAXPROCS=" + strconv.Itoa(b.opts.GOMAXPROCS), b.opts.Relay,
		"--backend", "srv1=" + BackendAddr.Addr().String(), "--metrics-addr", "0", "--log-level", "warn"}
	for _, s := range services {
		proto := "TCP"
		if s == UDPEcho {
			proto = "UDP"
		}
		if kind == Pier {
			args = append(args, "--listen", fmt.Sprintf("l%d/%s/0.0.0.0:%d", s, proto, s))
		}
	}
	if kind == PierKernel {
		// The kernel path needs an active check (config): the TCP echo's port.
		args = append(args, "--kernel", "--health-port", strconv.Itoa(int(TCPEcho)),
			"--listen", fmt.Sprintf("l%d/UDP/%s", UDPEcho, Target(kind, UDPEcho)))
	} else if b.opts.PprofAddr != "" {
		args = append(args, "--pprof-addr", b.opts.PprofAddr)
	}
	p, err := b.Relay.Start("env", args...)
	if err != nil {
		return err
	}
	b.procs[kind] = []*lab.Process{p}
	return nil
}

// nginxConf is nginx with the stream module only: two workers (the machine's
// cores), a UDP server per reuseport socket that keeps each client's session
// (proxy_responses unset: any number of replies per datagram) until it has
// been idle for proxy_timeout, and plain TCP stream proxies.
const nginxConf = `load_module %[1]s;
worker_processes 2;
worker_rlimit_nofile 65536;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 16384; }
stream {
	server {
		listen %[3]d udp reuseport;
		proxy_pass %[4]s:%[5]d;
		proxy_timeout 10s;
	}
	server { listen %[6]d; proxy_pass %[4]s:%[7]d; }
	server { listen %[8]d; proxy_pass %[4]s:%[9]d; }
	server { listen %[10]d; proxy_pass %[4]s:%[11]d; }
}
`

func (b *Bench) startNginx() error {
	dir := filepath.Join(b.opts.Dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	port := func(s Service) uint16 { return Target(Nginx, s).Port() }
	conf := fmt.Sprintf(nginxConf, NginxModule, dir,
		port(UDPEcho), BackendAddr.Addr(), UDPEcho,
		port(TCPEcho), TCPEcho, port(TCPDiscard), TCPDiscard, port(Iperf), Iperf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	p, err := b.Relay.Start("nginx", "-c", path, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return err
	}
	b.procs[Nginx] = []*lab.Process{p}
	return nil
}

// startSocat runs one socat per service; -T ends a UDP child once its
// client has been idle for 10 s.
func (b *Bench) startSocat() error {
	be := BackendAddr.Addr().String()
	for _, s := range services {
		proto := "TCP4"
		if s == UDPEcho {
			proto = "UDP4"
		}
		p, err := b.Relay.Start("socat", "-T", "10",
			fmt.Sprintf("%s-LISTEN:%d,fork,reuseaddr", proto, Target(Socat, s).Port()),
			fmt.Sprintf("%s:%s:%d", proto, be, s))
		if err != nil {
			return err
		}
		b.procs[Socat] = append(b.procs[Socat], p)
	}
	return nil
}

// waitTCP polls until target accepts a connection from the client.
func (b *Bench) waitTCP(ctx context.Context, target netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		c, err := b.Client.Dial(ctx, "tcp", target.String())
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dial %s: %w", target, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitUDP polls until target echoes a datagram from the client.
func (b *Bench) waitUDP(ctx context.Context, target netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := b.Client.ListenPacket("udp4", netip.AddrPortFrom(ClientAddr.Addr(), 0).String())
	if err != nil {
		return err
	}
	defer pc.Close()
	buf := make([]byte, 64)
	for {
		if _, err := pc.WriteTo([]byte("ready?"), net.UDPAddrFromAddrPort(target)); err != nil {
			return err
		}
		_ = pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := pc.ReadFrom(buf); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no echo from %s: %w", target, ctx.Err())
		}
	}
}

// output is the last lines of kind's processes, for errors.
func (b *Bench) output(k Kind) string {
	var out string
	for _, p := range b.procs[k] {
		out += "\n" + p.OutputTail(20)
	}
	return out
}

// Running reports an error naming any process that has exited.
func (b *Bench) Running() error {
	var errs []error
	for k, ps := range b.procs {
		for _, p := range ps {
			select {
			case <-p.Done():
				errs = append(errs, fmt.Errorf("%s process %d exited: %s", k, p.Pid(), p.OutputTail(10)))
			default:
			}
		}
	}
	return errors.Join(errs...)
}

// Loadgen runs pier-loadgen in the client with args (after the mode) and
// returns its summary.
func (b *Bench) Loadgen(ctx context.Context, mode loadgen.Mode, target netip.AddrPort, args ...string) (loadgen.Result, error) {
	args = append([]string{string(mode), "--target", target.String()}, args...)
	cmd := b.Client.Command(ctx, b.opts.Loadgen, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res loadgen.Result
	if jerr := json.Unmarshal(out, &res); err == nil && jerr != nil {
		err = fmt.Errorf("summary: %w: %s", jerr, out)
	}
	if err != nil {
		return res, fmt.Errorf("relaybench: pier-loadgen %v: %w: %s", args, err, stderr.String())
	}
	return res, nil
}

// Iperf3 runs iperf3 -c in the client for d with streams parallel
// connections and returns what the server received, in 10^6 bytes/s.
func (b *Bench) Iperf3(ctx context.Context, target netip.AddrPort, d time.Duration, streams int) (float64, error) {
	args := []string{"-c", target.Addr().String(), "-p", strconv.Itoa(int(target.Port())),
		"-t", strconv.FormatFloat(d.Seconds(), 'f', -1, 64), "-P", strconv.Itoa(streams), "-J"}
	out, err := b.Client.Command(ctx, "iperf3", args...).Output()
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &r); err == nil && jerr != nil {
		err = jerr
	}
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
	}
	if err != nil {
		return 0, fmt.Errorf("relaybench: iperf3 %v: %w", args, err)
	}
	return r.End.SumReceived.BitsPerSecond / 8 / 1e6, nil
}

// userHZ is the unit of /proc/<pid>/stat CPU times (USER_HZ, 100 on every
// Linux architecture Pier runs on).
const userHZ = 100

// RelayCPU is the CPU time used so far by every process on the relay host
// (all relays; only the one under load is busy), including children they
// have reaped (socat's forks). Kernel work done in their system calls counts
// as theirs; softirq work done elsewhere does not.
func (b *Bench) RelayCPU(ctx context.Context) (time.Duration, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", b.Relay.NS).Output()
	if err != nil {
		return 0, fmt.Errorf("relaybench: pids on the relay host: %w", err)
	}
	var ticks int64
	for _, pid := range strings.Fields(string(out)) {
		data, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue // exited
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3; utime, stime, cutime, cstime are fields 14 to 17.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
