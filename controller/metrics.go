package controller

import (
	"math/big"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pier-lb/pier/allocator"
)

// Metrics are the controller's Prometheus metrics. Labels are bounded: pools
// and families are few, error reasons a fixed set.
type Metrics struct {
	total    *prometheus.GaugeVec
	inUse    *prometheus.GaugeVec
	latency  prometheus.Histogram
	failures *prometheus.CounterVec
	services prometheus.Gauge
	invalid  *prometheus.GaugeVec
	orphans  prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		total: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_allocator_addresses_total",
			Help: "Addresses a pool can hand out, per family.",
		}, []string{"pool", "family"}),
		inUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_allocator_addresses_in_use",
			Help: "Addresses of a pool held by Services, per family.",
		}, []string{"pool", "family"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pier_controller_assign_duration_seconds",
			Help:    "Time to assign a Service its addresses and write its status.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_controller_assign_errors_total",
			Help: "Assignments that failed, by reason.",
		}, []string{"reason"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_controller_services_assigned",
			Help: "Services holding at least one address.",
		}),
		invalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_controller_config_invalid_objects",
			Help: "Configuration objects left out because of errors (the rest applies), by kind.",
		}, []string{"kind"}),
		orphans: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_allocator_orphaned_addresses",
			Help: "Addresses Services hold outside every pool: still announced, not reusable until released.",
		}),
	}
	m.invalid.WithLabelValues("IPAddressPool")
	reg.MustRegister(m.total, m.inUse, m.latency, m.failures, m.services, m.invalid, m.orphans)
	return m
}

func (m *Metrics) setOrphans(n int) { m.orphans.Set(float64(n)) }

func (m *Metrics) setStats(stats []allocator.PoolStats) {
	m.total.Reset()
	m.inUse.Reset()
	for _, s := range stats {
		total, _ := new(big.Float).SetInt(s.Total).Float64()
		m.total.WithLabelValues(s.Pool, s.Family.String()).Set(total)
		m.inUse.WithLabelValues(s.Pool, s.Family.String()).Set(float64(s.InUse))
	}
}
