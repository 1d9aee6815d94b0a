package vip

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations, the values of the op label.
const (
	opAdd    = "add"
	opRemove = "remove"
	opList   = "list"  // finding the link or reading its addresses
	opState  = "state" // reading or writing the state file
)

// Metrics are the local VIP metrics. Labels are bounded: two families and
// four operations, no per-address labels.
type Metrics struct {
	held    *prometheus.GaugeVec
	changes *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests and callers that do not export them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_vip_addresses",
			Help: "Addresses Pier holds on the local VIP link, per family.",
		}, []string{"family"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_vip_changes_total",
			Help: "Addresses added to or removed from the local VIP link, per operation.",
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_vip_errors_total",
			Help: "Failed operations on the local VIP link or state file (add, remove, list, state).",
		}, []string{"op"}),
	}
	for _, f := range []string{"ipv4", "ipv6"} {
		m.held.WithLabelValues(f)
	}
	for _, op := range []string{opAdd, opRemove} {
		m.changes.WithLabelValues(op)
	}
	for _, op := range []string{opAdd, opRemove, opList, opState} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.held, m.changes, m.errors)
	}
	return m
}

func (m *Metrics) changed(op string) { m.changes.WithLabelValues(op).Inc() }

func (m *Metrics) failed(op string, err error) {
	if err != nil {
		m.errors.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) hold(addrs []netip.Addr) {
	var v4, v6 float64
	for _, a := range addrs {
		if a.Is4() {
			v4++
		} else {
			v6++
		}
	}
	m.held.WithLabelValues("ipv4").Set(v4)
	m.held.WithLabelValues("ipv6").Set(v6)
}
