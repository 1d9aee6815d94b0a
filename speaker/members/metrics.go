package members

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the membership metrics; their labels are a fixed set.
type Metrics struct {
	live       prometheus.Gauge
	events     *prometheus.CounterVec
	joinErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		live: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pier_speaker_live_members",
			Help: "Speakers this one sees alive (or suspect), itself included.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pier_speaker_member_events_total",
			Help: "Membership events seen: join, leave (left or declared dead), update (metadata).",
		}, []string{"event"}),
		joinErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pier_speaker_member_join_errors_total",
			Help: "Join attempts in which no peer could be reached.",
		}),
	}
	for _, e := range []string{eventJoin, eventLeave, eventUpdate} {
		m.events.WithLabelValues(e)
	}
	if reg != nil {
		reg.MustRegister(m.live, m.events, m.joinErrors)
	}
	return m
}

const (
	eventJoin   = "join"
	eventLeave  = "leave"
	eventUpdate = "update"
)
