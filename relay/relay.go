package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

// Protocol is a listener's transport.
type Protocol string

// Protocols.
const (
	TCP Protocol = "TCP"
	UDP Protocol = "UDP"
)

// Defaults for zero Options fields.
const (
	DefaultMaxFlows        = 100_000
	DefaultUDPIdleTimeout  = 60 * time.Second
	DefaultTCPIdleTimeout  = 5 * time.Minute
	DefaultConnectTimeout  = 5 * time.Second
	DefaultDrainTimeout    = 30 * time.Second
	DefaultHealthInterval  = 300 * time.Millisecond
	DefaultMaxDatagramSize = 2048
	// DefaultMaxTCPConns bounds a TCP listener's connections: up to 20000
	// descriptors and about 150 MB (two goroutines and two sockets each,
	// BenchmarkTCPRelayHeld), far more than one node's calls fall back to
	// TCP, yet below the descriptor limit a relay pod gets.
	DefaultMaxTCPConns = 10_000
	// DefaultMaxTCPConnsPerSource bounds one client address's connections
	// per TCP listener: a tenth of the listener, so a site NAT carries many
	// callers while one source cannot take the listener.
	DefaultMaxTCPConnsPerSource = 1_000
)

// Listener is one frontend: an address and port the relay accepts on.
type Listener struct {
	Name     string // unique; Backend.Ports is keyed by it (a Service port name)
	Protocol Protocol
	Addr     netip.AddrPort // the address may be unspecified (0.0.0.0 or ::)
}

// Backend is one server, typically one ready endpoint of an EndpointSlice.
type Backend struct {
	Name string // unique and stable (the endpoint's target or address); hashed by Maglev
	Addr netip.Addr
	// Ports maps a listener name to the backend's port for it (an
	// EndpointSlice port). A listener missing here uses DefaultPort, or
	// its own port when DefaultPort is 0.
	Ports       map[string]uint16
	DefaultPort uint16
	// ProxyProtocol sends a PROXY protocol v2 header to this backend.
	ProxyProtocol bool
	// HealthPort is the TCP port the active check connects to; 0 means the
	// backend's port of the first TCP listener it serves. A backend with
	// neither is tried again 10 health intervals after it went down.
	HealthPort uint16
	// Weights, when not nil, are the listeners this backend serves, by
	// name, with its share of their new flows relative to the other
	// backends' (NewWeightedTable): weight 0 takes no new flow, its placed
	// flows go on; a listener missing here is not served. nil: weight 1
	// on every listener.
	Weights map[string]uint32
}

// weight is the backend's weight on listener name.
func (b *Backend) weight(name string) uint32 {
	if b.Weights == nil {
		return 1
	}
	return b.Weights[name]
}

// serves reports whether the backend serves listener name.
func (b *Backend) serves(name string) bool {
	if b.Weights == nil {
		return true
	}
	_, ok := b.Weights[name]
	return ok
}

// Options configures a Relay. Zero durations and sizes take the defaults.
type Options struct {
	Listeners []Listener
	Backends  []Backend
	// VIPs are the relay's LoadBalancer addresses. Only the kernel data path
	// needs them (SetVIPs): where kube-proxy translates them to the node's
	// own address, the relay's sockets get their datagrams anyway.
	VIPs []netip.Addr
	// KeyByAddressOnly hashes the client address only, so every port of a
	// client lands on the same backend.
	KeyByAddressOnly bool
	// MaxFlows bounds the UDP flows per listener. Each flow holds one socket
	// and one ephemeral port, so MaxFlows times the UDP listeners must fit
	// RLIMIT_NOFILE and the node's port range (Run warns).
	MaxFlows int
	// MaxTCPConns bounds the connections per TCP listener, and
	// MaxTCPConnsPerSource those of one client address (an IPv6 client by
	// its /64) per TCP listener; connections beyond either are closed at
	// once and counted (pier_relay_tcp_refused_total).
	MaxTCPConns          int
	MaxTCPConnsPerSource int
	TableSize            int // Maglev table size, a prime (default 65537)
	MaxDatagramSize      int // largest UDP datagram relayed; larger ones are dropped
	UDPIdleTimeout       time.Duration
	TCPIdleTimeout       time.Duration
	ConnectTimeout       time.Duration
	DrainTimeout         time.Duration
	HealthInterval       time.Duration
	Logger               *slog.Logger
	Metrics              *Metrics // nil: a private registry
	Clock                clock.WithTicker

	// UDPSockets is the listener sockets per UDP listener, an SO_REUSEPORT
	// group with a reader each (Linux); 0 means GOMAXPROCS.
	UDPSockets int

	// Kernel hands new UDP flows to the kernel's NAT where it can
	// (kernel.go); the rest stay on the relay's sockets.
	Kernel KernelOptions

	// Token routes a new flow to the backend its first bytes name
	// (token.go); off when Length is 0.
	Token TokenOptions
}

// Relay forwards flows from its listeners to backends.
type Relay struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	clock   clock.WithTicker

	// mu serializes the writers of the data-plane state (SetBackends,
	// SetVIPs, health changes); a new flow reads plane without it.
	mu    sync.Mutex
	plane atomic.Pointer[plane]

	// kernelTrigger asks the kernel sync (Run) to write the latest plane:
	// changes made while it writes coalesce into one more write.
	kernelTrigger chan struct{}
	kmu           sync.Mutex
	kernel        KernelPath // nil when off; guarded by kmu
	forget        []*backend // down, their kernel flows to end (forgetKernel); guarded by kmu
	// kernelFwd is the families the node forwards, set when the kernel
	// path opens (Run), read-only after.
	kernelFwd map[ipFamily]bool

	ready   chan struct{}
	addrsMu sync.Mutex
	addrs   map[string]netip.AddrPort
	udp     map[string]*udpServer
}

// plane is one version of the data-plane state. It is never changed once
// published (Relay.plane), so a new flow reads a table and the backends it
// names as one version, without a lock.
type plane struct {
	backends map[string]*backend
	tables   map[string]*Table // by listener name; over the up backends
	vips     []netip.Addr
}

// backend is a Backend with its health.
type backend struct {
	Backend
	up       atomic.Bool
	downedAt atomic.Int64 // unix nanoseconds
	misses   atomic.Int32 // active checks in a row that got no answer
}

func (b *backend) addr(l Listener) netip.AddrPort {
	p, ok := b.Ports[l.Name]
	switch {
	case ok:
	case b.DefaultPort != 0:
		p = b.DefaultPort
	default:
		p = l.Addr.Port()
	}
	return netip.AddrPortFrom(b.Addr, p)
}

// New validates opts and returns a relay that is not running yet.
func New(opts Options) (*Relay, error) {
	opts = withDefaults(opts)
	if err := validate(opts); err != nil {
		return nil, err
	}
	r := &Relay{
		opts:          opts,
		log:           opts.Logger.With("component", "relay"),
		metrics:       opts.Metrics,
		clock:         opts.Clock,
		ready:         make(chan struct{}),
		addrs:         map[string]netip.AddrPort{},
		udp:           map[string]*udpServer{},
		kernelTrigger: make(chan struct{}, 1),
	}
	r.plane.Store(&plane{backends: map[string]*backend{}})
	if err := r.SetVIPs(opts.VIPs); err != nil {
		return nil, err
	}
	if err := r.SetBackends(opts.Backends); err != nil {
		return nil, err
	}
	return r, nil
}

func withDefaults(o Options) Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.UDPIdleTimeout, DefaultUDPIdleTimeout)
	def(&o.TCPIdleTimeout, DefaultTCPIdleTimeout)
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.DrainTimeout, DefaultDrainTimeout)
	def(&o.HealthInterval, DefaultHealthInterval)
	def(&o.Token.Timeout, DefaultTokenTimeout)
	if o.MaxFlows == 0 {
		o.MaxFlows = DefaultMaxFlows
	}
	if o.MaxTCPConns == 0 {
		o.MaxTCPConns = DefaultMaxTCPConns
	}
	if o.MaxTCPConnsPerSource == 0 {
		o.MaxTCPConnsPerSource = min(DefaultMaxTCPConnsPerSource, o.MaxTCPConns)
	}
	if o.TableSize == 0 {
		o.TableSize = DefaultTableSize
	}
	if o.MaxDatagramSize == 0 {
		o.MaxDatagramSize = DefaultMaxDatagramSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Kernel.TablePrefix == "" {
		o.Kernel.TablePrefix = DefaultKernelTablePrefix
	}
	if o.Kernel.CtMark == 0 {
		o.Kernel.CtMark = DefaultKernelCtMark
	}
	return o
}

func validate(o Options) error {
	if len(o.Listeners) == 0 {
		return errors.New("relay: no listeners")
	}
	if !isPrime(o.TableSize) {
		return fmt.Errorf("relay: table size %d: not a prime", o.TableSize)
	}
	if o.MaxFlows < 0 || o.MaxDatagramSize < 0 || o.MaxDatagramSize > 65535 {
		return fmt.Errorf("relay: max flows %d, max datagram %d: out of range", o.MaxFlows, o.MaxDatagramSize)
	}
	if o.MaxTCPConns < 0 || o.MaxTCPConnsPerSource < 0 {
		return fmt.Errorf("relay: max tcp connections %d, per source %d: out of range", o.MaxTCPConns, o.MaxTCPConnsPerSource)
	}
	if o.Kernel.Enabled && o.Kernel.Tables == nil {
		return errors.New("relay: kernel data path without Options.Kernel.Tables (NewKernelTables, once per process)")
	}
	if m := o.Kernel.CtMark; m&(m-1) != 0 {
		return fmt.Errorf("relay: kernel conntrack mark %#x: want a single bit", m)
	}
	if err := o.Token.validate(); err != nil {
		return err
	}
	if o.UDPSockets < 0 {
		return fmt.Errorf("relay: udp sockets %d: out of range", o.UDPSockets)
	}
	seen := map[string]bool{}
	for _, l := range o.Listeners {
		if l.Name == "" || seen[l.Name] {
			return fmt.Errorf("relay: listener %q: empty or duplicate name", l.Name)
		}
		seen[l.Name] = true
		if l.Protocol != TCP && l.Protocol != UDP {
			return fmt.Errorf("relay: listener %s: protocol %q: want TCP or UDP", l.Name, l.Protocol)
		}
		if !l.Addr.IsValid() {
			return fmt.Errorf("relay: listener %s: invalid address", l.Name)
		}
	}
	return nil
}

func validateBackends(bs []Backend) error {
	seen := map[string]bool{}
	for _, b := range bs {
		if b.Name == "" || seen[b.Name] {
			return fmt.Errorf("relay: backend %q: empty or duplicate name", b.Name)
		}
		seen[b.Name] = true
		if !b.Addr.IsValid() {
			return fmt.Errorf("relay: backend %s: invalid address", b.Name)
		}
	}
	return nil
}

// SetBackends replaces the backend set (from EndpointSlices). Backends that
// stay keep their health; new ones start up. Existing flows stay where they
// are: flows on a removed backend go on until they end or idle out.
func (r *Relay) SetBackends(bs []Backend) error {
	if err := validateBackends(bs); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.plane.Load()
	next := make(map[string]*backend, len(bs))
	for _, b := range bs {
		old, ok := cur.backends[b.Name]
		if ok && old.Backend.Equal(b) {
			next[b.Name] = old // flows keep sharing its health
			continue
		}
		nb := &backend{Backend: b}
		nb.up.Store(true)
		if ok && old.Addr == b.Addr {
			nb.up.Store(old.up.Load())
			nb.downedAt.Store(old.downedAt.Load())
		}
		next[b.Name] = nb
	}
	for name := range cur.backends {
		if _, ok := next[name]; !ok {
			r.metrics.backendUp.DeleteLabelValues(name)
		}
	}
	r.publishLocked(next, cur.vips)
	return nil
}

// SetVIPs replaces the relay's LoadBalancer addresses (see Options.VIPs).
func (r *Relay) SetVIPs(vips []netip.Addr) error {
	for _, v := range vips {
		if !v.IsValid() || v.IsUnspecified() {
			return fmt.Errorf("relay: VIP %s: invalid", v)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.plane.Load()
	if slices.Equal(cur.vips, vips) {
		return nil
	}
	next := *cur
	next.vips = slices.Clone(vips)
	r.plane.Store(&next)
	r.signalKernel()
	return nil
}

// Equal reports whether b and o are the same backend, with the same ports,
// PROXY protocol and health check.
func (b Backend) Equal(o Backend) bool {
	return b.Name == o.Name && b.Addr == o.Addr && b.ProxyProtocol == o.ProxyProtocol &&
		b.HealthPort == o.HealthPort && b.DefaultPort == o.DefaultPort && maps.Equal(b.Ports, o.Ports) &&
		(b.Weights == nil) == (o.Weights == nil) && maps.Equal(b.Weights, o.Weights)
}

// rebuildLocked rebuilds every listener's table over the healthy backends
// (one went up or down).
func (r *Relay) rebuildLocked() {
	cur := r.plane.Load()
	r.publishLocked(cur.backends, cur.vips)
}

// publishLocked makes backends, with every listener's table over the
// healthy ones, and vips the data-plane state, then asks the kernel sync to
// follow. backends must not change afterwards.
func (r *Relay) publishLocked(backends map[string]*backend, vips []netip.Addr) {
	next := &plane{backends: backends, tables: r.tablesOf(backends), vips: vips}
	r.plane.Store(next)
	for name, b := range backends {
		r.metrics.backendUp.WithLabelValues(name).Set(boolGauge(b.up.Load()))
	}
	r.metrics.rebuilds.Inc()
	r.signalKernel()
}

// tablesOf builds each listener's table over the healthy backends, by
// their weights on it; listeners with the same weights share one table
// (every listener, when no backend has weights).
func (r *Relay) tablesOf(backends map[string]*backend) map[string]*Table {
	out := make(map[string]*Table, len(r.opts.Listeners))
	var built []map[string]uint32
	var tables []*Table
	for _, l := range r.opts.Listeners {
		ws := make(map[string]uint32, len(backends))
		for name, b := range backends {
			if b.up.Load() {
				ws[name] = b.weight(l.Name)
			}
		}
		if i := slices.IndexFunc(built, func(o map[string]uint32) bool { return maps.Equal(o, ws) }); i >= 0 {
			out[l.Name] = tables[i]
			continue
		}
		t, err := NewWeightedTable(ws, r.opts.TableSize)
		if err != nil {
			panic(err) // size validated in New
		}
		built, tables = append(built, ws), append(tables, t)
		out[l.Name] = t
	}
	return out
}

// signalKernel asks the kernel sync to write the current plane; it never
// waits.
func (r *Relay) signalKernel() {
	select {
	case r.kernelTrigger <- struct{}{}:
	default: // a write is pending already: it reads the latest plane
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// pick returns the backend owning client on listener l. It takes no lock.
func (r *Relay) pick(l Listener, client netip.AddrPort) (*backend, error) {
	p := r.plane.Load()
	b := p.backends[p.tables[l.Name].Lookup(HashKey(client, r.opts.KeyByAddressOnly))]
	if b == nil {
		return nil, ErrNoBackend
	}
	return b, nil
}

// backend returns the current backend called name, if any.
func (r *Relay) backend(name string) *backend {
	return r.plane.Load().backends[name]
}

// table is listener name's current Maglev table.
func (r *Relay) table(name string) *Table {
	return r.plane.Load().tables[name]
}

// Ready is closed once every listener is open.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

// Addr returns the address listener name is bound to (with the real port
// when Listener.Addr had port 0), once Ready.
func (r *Relay) Addr(name string) netip.AddrPort {
	r.addrsMu.Lock()
	defer r.addrsMu.Unlock()
	return r.addrs[name]
}

func (r *Relay) setAddr(name string, a netip.AddrPort) {
	r.addrsMu.Lock()
	r.addrs[name] = a
	r.addrsMu.Unlock()
}

// server is one running listener.
type server interface {
	serve(ctx context.Context) error
}

// Run opens the listeners, relays until ctx ends, then drains. It returns an
// error if a listener cannot be opened.
func (r *Relay) Run(ctx context.Context) error {
	var servers []server
	for _, l := range r.opts.Listeners {
		s, err := r.open(l)
		if err != nil {
			for _, s := range servers {
				s.(interface{ close() }).close()
			}
			return err
		}
		servers = append(servers, s)
	}
	if err := r.openKernel(); err != nil {
		r.log.Warn("kernel data path off: relaying every UDP flow in user space", "err", err)
	}
	close(r.ready)
	r.warnLimits()
	var wg sync.WaitGroup
	wg.Go(func() { r.healthLoop(ctx) })
	if p := r.kernelPath(); p != nil {
		wg.Go(func() { r.syncKernel(ctx, p) }) // on ctx's end, it stops taking new flows first
	}
	defer r.closeKernel()
	errs := make([]error, len(servers))
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.serve(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Relay) open(l Listener) (server, error) {
	log := r.opts.Logger.With("component", "relay", "listener", l.Name)
	if l.Protocol == TCP {
		return r.openTCP(l, log)
	}
	s, err := r.openUDP(l, log)
	if err == nil {
		r.addrsMu.Lock()
		r.udp[l.Name] = s
		r.addrsMu.Unlock()
	}
	return s, err
}

// warnLimits logs when the flow and connection limits can exceed what the
// process gets: open files (UDP flows past them fail to get a socket, TCP
// accepts fail and back off) and, for UDP flows, the node's ephemeral
// ports, one per flow; flows past either are dropped as local-limit.
func (r *Relay) warnLimits() {
	const fdsPerTCPConn = 2 // the client and backend sockets (tcpcopy_linux.go)
	var need, flows uint64
	for _, l := range r.opts.Listeners {
		if l.Protocol == UDP {
			flows += uint64(r.opts.MaxFlows)
		} else {
			need += fdsPerTCPConn * uint64(r.opts.MaxTCPConns)
		}
	}
	need += flows
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && need > lim.Cur {
		r.log.Warn("open file limit below the UDP flow and TCP connection limits", "limit", lim.Cur, "descriptors", need)
	}
	if lo, hi, err := ephemeralPorts(); err == nil && flows > uint64(hi-lo+1) {
		r.log.Warn("UDP flow limits above the ephemeral ports (net.ipv4.ip_local_port_range), one per flow",
			"ports", hi-lo+1, "flows", flows)
	}
}

// ephemeralPorts is the node's ephemeral port range (Linux), which the
// relay's UDP flow sockets share with every other socket of the node.
func ephemeralPorts() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: %w", b, err)
	}
	return lo, hi, nil
}
