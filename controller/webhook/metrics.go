package webhook

import "github.com/prometheus/client_golang/prometheus"

// Results of an admission request, the values of the result label.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
	resultError   = "error"
)

// kindUnknown labels requests that could not be decoded or name a kind the
// webhook does not handle, so the kind label stays bounded.
const kindUnknown = "unknown"

// Metrics are the webhook's Prometheus metrics.
type Metrics struct {
	requests   *prometheus.CounterVec
	certExpiry prometheus.Gauge
}

// NewMetrics creates the webhook metrics and registers them with reg when
// reg is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_webhook_requests_total",
			Help: "Admission requests handled, by kind and result (allowed, denied, error).",
		}, []string{"kind", "result"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_webhook_cert_expiry_timestamp_seconds",
			Help: "Expiry of the serving certificate in use, as a Unix timestamp.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.certExpiry)
	}
	return m
}

func (m *Metrics) request(kind, result string) {
	m.requests.WithLabelValues(kind, result).Inc()
}
