package speaker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pier-lb/pier/config"
)

// Metrics are the speaker's own metrics; their labels are a fixed set.
type Metrics struct {
	invalid     *prometheus.GaugeVec
	stateWrites prometheus.Counter
	applyFails  *prometheus.CounterVec
}

// The parts a pass applies, the values of the part label of
// pier_speaker_apply_failures_total.
const (
	partL2       = "l2"
	partBGPPeers = "bgp-peers"
	partBGPPaths = "bgp-paths"
	partVIP      = "vip"
)

var parts = []string{partL2, partBGPPeers, partBGPPaths, partVIP}

// configKinds are the kinds a speaker reads, the values of the kind label.
var configKinds = []string{config.KindIPAddressPool, config.KindL2Advertisement, config.KindBGPPeer, config.KindBGPAdvertisement}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		invalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_speaker_config_invalid_objects",
			Help: "Configuration objects left out because of errors (the rest applies), by kind.",
		}, []string{"kind"}),
		stateWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_speaker_state_write_failures_total",
			Help: "Failed writes of the state file (what a restart during an API outage announces).",
		}),
		applyFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_speaker_apply_failures_total",
			Help: "Passes in which a part (l2, bgp-peers, bgp-paths, vip) was not wholly applied; the rest of it was, and the next pass retries.",
		}, []string{"part"}),
	}
	for _, k := range configKinds {
		m.invalid.WithLabelValues(k)
	}
	for _, p := range parts {
		m.applyFails.WithLabelValues(p)
	}
	if reg != nil {
		reg.MustRegister(m.invalid, m.stateWrites, m.applyFails)
	}
	return m
}

func (m *Metrics) setInvalid(counts map[string]int) {
	if m == nil {
		return
	}
	for _, k := range configKinds {
		m.invalid.WithLabelValues(k).Set(float64(counts[k]))
	}
}

func (m *Metrics) stateWriteFailed() {
	if m != nil {
		m.stateWrites.Inc()
	}
}

func (m *Metrics) applyFailed(part string) {
	if m != nil {
		m.applyFails.WithLabelValues(part).Inc()
	}
}
