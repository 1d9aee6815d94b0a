package agent

import "github.com/prometheus/client_golang/prometheus"

// metrics are the agent's own metrics; the relays' are relay.Metrics with a
// relay label.
type metrics struct {
	served        prometheus.Gauge
	startFailures prometheus.Counter
	leaseWrites   *prometheus.CounterVec
	apiSynced     prometheus.Gauge
	// stateWriteFailures counts state files that could not be written.
	stateWriteFailures prometheus.Counter
	// invalid counts the Relays config refuses.
	invalid prometheus.Gauge
	// apiReads counts the reads of the API cache.
	apiReads prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		served: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_relay_agent_served_relays", Help: "Relays this node runs a relay for.",
		}),
		startFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_relay_agent_start_failures_total", Help: "Relays that could not open their listeners (tried again every second).",
		}),
		leaseWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_relay_agent_lease_writes_total", Help: "Lease renewals by result (ok or error).",
		}, []string{"result"}),
		apiSynced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_relay_agent_api_synced", Help: "1 once the API caches have synced since start.",
		}),
		stateWriteFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_relay_agent_state_write_failures_total", Help: "Failed writes of the state file (the relays served after a restart while the API is unreachable).",
		}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_relay_agent_invalid_relays", Help: "Relays refused as invalid (config.ParseRelay); those this node served keep their last valid configuration.",
		}),
		apiReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_relay_agent_api_reads_total", Help: "Reads of the API cache (the Relays, their backend Services' EndpointSlices, the Node): one per change of what the agent reads, none while nothing changes.",
		}),
	}
	reg.MustRegister(m.served, m.startFailures, m.leaseWrites, m.apiSynced, m.stateWriteFailures, m.invalid, m.apiReads)
	return m
}
