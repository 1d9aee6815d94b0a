package bgp

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the announcer's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	sessionUp *prometheus.GaugeVec
	announced prometheus.Gauge
	updates   *prometheus.CounterVec
	// overLimit's peer label is bounded by the configured peers.
	overLimit *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_bgp_session_up",
			Help: "1 while the BGP session with the peer is Established, else 0.",
		}, []string{"peer"}),
		announced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_bgp_announced_prefixes",
			Help: "Prefixes the node announces (to one or more peers).",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_bgp_updates_total",
			Help: "Paths added to (announce) or removed from (withdraw) the BGP table.",
		}, []string{"op"}),
		overLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_bgp_prefix_limit_exceeded_total",
			Help: "Sessions closed because the peer sent more prefixes than its limit (its routes are dropped).",
		}, []string{"peer"}),
	}
	if reg != nil {
		reg.MustRegister(m.sessionUp, m.announced, m.updates, m.overLimit)
	}
	return m
}

func (m *Metrics) setSession(peer string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.sessionUp.WithLabelValues(peer).Set(v)
}

func (m *Metrics) deleteSession(peer string) {
	if m != nil {
		m.sessionUp.DeleteLabelValues(peer)
	}
}

func (m *Metrics) setAnnounced(n int) {
	if m != nil {
		m.announced.Set(float64(n))
	}
}

func (m *Metrics) update(op string) {
	if m != nil {
		m.updates.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) prefixLimit(peer string) {
	if m != nil {
		m.overLimit.WithLabelValues(peer).Inc()
	}
}

func (m *Metrics) deletePrefixLimit(peer string) {
	if m != nil {
		m.overLimit.DeleteLabelValues(peer)
	}
}
