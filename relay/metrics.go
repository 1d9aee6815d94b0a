package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the relay's Prometheus metrics. Labels are bounded: proto is
// tcp or udp, direction in or out, reason and result fixed sets, backend
// one per endpoint of the Service.
type Metrics struct {
	activeFlows *prometheus.GaugeVec
	packets     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	drops       *prometheus.CounterVec
	backendUp   *prometheus.GaugeVec
	rebuilds    prometheus.Counter
	tokens      *prometheus.CounterVec
	// tcpRefused and acceptErrors are labelled by listener name (at most
	// 16 per Relay, config.MaxRelayListeners).
	tcpRefused   *prometheus.CounterVec
	acceptErrors *prometheus.CounterVec
	// evictions counts UDP flows removed from a full table for a new flow.
	evictions prometheus.Counter
	// kernelSyncErrors counts failed writes of the kernel data path's
	// tables.
	kernelSyncErrors prometheus.Counter
	kernel           *kernelCollector
}

// Drop reasons.
const (
	dropTableFull = "table-full"
	dropNoBackend = "no-backend"
	dropTooBig    = "too-big"
	dropUpstream  = "upstream-error"
	// dropLocalLimit: the relay itself had no descriptor, local port or
	// buffer for the flow's backend socket.
	dropLocalLimit = "local-limit"
	dropDraining   = "draining"
)

// Reasons a TCP connection is refused (MaxTCPConns, MaxTCPConnsPerSource).
const (
	refusedListenerLimit = "listener-limit"
	refusedSourceLimit   = "source-limit"
)

// Directions: in is client to backend, out is backend to client.
const (
	dirIn  = "in"
	dirOut = "out"
)

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		activeFlows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_relay_active_flows", Help: "Flows (UDP) or connections (TCP) being relayed.",
		}, []string{"proto"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_packets_total", Help: "Datagrams relayed (UDP only; TCP counts bytes).",
		}, []string{"proto", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_bytes_total", Help: "Payload bytes relayed.",
		}, []string{"proto", "direction"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_drops_total", Help: "Datagrams or connections dropped, by reason.",
		}, []string{"proto", "reason"}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_relay_backend_up", Help: "1 if the backend is healthy and in the Maglev table.",
		}, []string{"backend"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_relay_table_rebuilds_total", Help: "Maglev table rebuilds.",
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_token_routed_total", Help: "New flows placed with a routing token, by result (routed, unknown, down, short).",
		}, []string{"proto", "result"}),
		tcpRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_tcp_refused_total", Help: "TCP connections reset at once, by listener and reason (listener-limit, source-limit).",
		}, []string{"listener", "reason"}),
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_tcp_accept_errors_total", Help: "Failed TCP accepts (such as EMFILE, out of descriptors), each followed by a back-off of 5 ms doubling to 1 s.",
		}, []string{"listener"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_relay_udp_flows_evicted_total", Help: "UDP flows that had carried one datagram from their client, removed from a full flow table to take a new flow.",
		}),
		kernelSyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_relay_kernel_sync_errors_total", Help: "Failed writes of the kernel data path's tables, each tried again after a back-off of 200 ms doubling to 5 s, or at the next change.",
		}),
		kernel: newKernelCollector(),
	}
	reg.MustRegister(m.collectors()...)
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.activeFlows, m.packets, m.bytes, m.drops, m.backendUp, m.rebuilds, m.tokens, m.tcpRefused, m.acceptErrors, m.evictions, m.kernelSyncErrors, m.kernel}
}

// Unregister removes the metrics from reg, the registerer NewMetrics was
// given (for a relay that stops serving, so its series go away).
func (m *Metrics) Unregister(reg prometheus.Registerer) {
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// protoMetrics are one protocol's series, resolved once so the hot path does
// no label lookups.
type protoMetrics struct {
	active                prometheus.Gauge
	packetsIn, packetsOut prometheus.Counter
	bytesIn, bytesOut     prometheus.Counter
	drops                 *prometheus.CounterVec
	tokens                *prometheus.CounterVec
	proto                 string
}

func (m *Metrics) forProto(proto string) protoMetrics {
	return protoMetrics{
		active:     m.activeFlows.WithLabelValues(proto),
		packetsIn:  m.packets.WithLabelValues(proto, dirIn),
		packetsOut: m.packets.WithLabelValues(proto, dirOut),
		bytesIn:    m.bytes.WithLabelValues(proto, dirIn),
		bytesOut:   m.bytes.WithLabelValues(proto, dirOut),
		drops:      m.drops,
		tokens:     m.tokens,
		proto:      proto,
	}
}

func (p protoMetrics) drop(reason string) { p.drops.WithLabelValues(p.proto, reason).Inc() }
