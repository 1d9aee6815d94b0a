package l2

import "github.com/prometheus/client_golang/prometheus"

// Drop reasons, the values of the reason label of pier_l2_dropped_total.
const (
	// reasonMalformed: truncated frame, bad checksum, bad NDP option.
	reasonMalformed = "malformed"
	// reasonInvalid: well formed but breaking a protocol rule (NDP hop
	// limit not 255, unspecified source with a link-layer option, ...).
	reasonInvalid = "invalid"
	// reasonForeign: not an Ethernet/IPv4 ARP request or not a Neighbor
	// Solicitation (other hardware type, replies, other ICMPv6 types).
	reasonForeign = "foreign"
	// reasonNotOwned: a request for an address this node does not announce
	// on that interface.
	reasonNotOwned = "not-owned"
	// reasonSendFailed: the reply could not be written.
	reasonSendFailed = "send-failed"
)

// Metrics are the L2 announcer's Prometheus metrics. Labels are bounded:
// two families and a fixed set of drop reasons, no per-address labels.
type Metrics struct {
	received   *prometheus.CounterVec
	responses  *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	owned      *prometheus.GaugeVec
	yielded    *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests and callers that do not export them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_l2_requests_received_total",
			Help: "ARP and NDP frames read by the responders, per family.",
		}, []string{"family"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_l2_responses_sent_total",
			Help: "ARP replies and solicited Neighbor Advertisements sent, per family.",
		}, []string{"family"}),
		gratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_l2_gratuitous_sent_total",
			Help: "Gratuitous ARP and unsolicited Neighbor Advertisements sent, per family.",
		}, []string{"family"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_l2_dropped_total",
			Help: "Frames read but not answered, per family and reason (malformed, invalid, foreign, not-owned, send-failed).",
		}, []string{"family", "reason"}),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pier_l2_owned_addresses",
			Help: "Addresses this node answers for, per family.",
		}, []string{"family"}),
		yielded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_l2_yielded_total",
			Help: "Addresses a leaving node stopped answering for when another host announced them, per family.",
		}, []string{"family"}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.responses, m.gratuitous, m.dropped, m.owned, m.yielded)
	}
	return m
}

var reasons = []string{reasonMalformed, reasonInvalid, reasonForeign, reasonNotOwned, reasonSendFailed}

// familyMetrics are one family's series, resolved once so that the packet
// path does no label lookups.
type familyMetrics struct {
	received, responses, gratuitous, yielded prometheus.Counter
	dropped                                  map[string]prometheus.Counter
	owned                                    prometheus.Gauge
}

func (m *Metrics) family(f family) *familyMetrics {
	l := f.String()
	fm := &familyMetrics{
		received:   m.received.WithLabelValues(l),
		responses:  m.responses.WithLabelValues(l),
		gratuitous: m.gratuitous.WithLabelValues(l),
		yielded:    m.yielded.WithLabelValues(l),
		dropped:    make(map[string]prometheus.Counter, len(reasons)),
		owned:      m.owned.WithLabelValues(l),
	}
	for _, r := range reasons {
		fm.dropped[r] = m.dropped.WithLabelValues(l, r)
	}
	return fm
}
