package bfd

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Mux's counters and the states of the sessions
// running on it. The peer label is bounded by the configured sessions.
type Collector struct {
	mux                      *Mux
	received, dropped        *prometheus.Desc
	sessionUp, sessionDowns  *prometheus.Desc
	sessionSent, sessionRecv *prometheus.Desc
}

// NewCollector returns a collector for m and registers it with reg (nil:
// not registered).
func NewCollector(m *Mux, reg prometheus.Registerer) *Collector {
	peer := []string{"peer", "local"}
	c := &Collector{
		mux: m,
		received: prometheus.NewDesc("pier_speaker_bfd_received_packets_total",
			"BFD packets received on the node's BFD sockets.", nil, nil),
		dropped: prometheus.NewDesc("pier_speaker_bfd_dropped_packets_total",
			"BFD packets dropped before reaching a session, by reason (malformed, authentication, bad_ttl, unknown_session).",
			[]string{"reason"}, nil),
		sessionUp: prometheus.NewDesc("pier_speaker_bfd_session_up",
			"1 while the BFD session with the peer is Up, else 0.", peer, nil),
		sessionDowns: prometheus.NewDesc("pier_speaker_bfd_session_down_total",
			"Times the BFD session left Up.", peer, nil),
		sessionSent: prometheus.NewDesc("pier_speaker_bfd_session_sent_packets_total",
			"BFD control packets the session sent.", peer, nil),
		sessionRecv: prometheus.NewDesc("pier_speaker_bfd_session_received_packets_total",
			"BFD control packets the session accepted.", peer, nil),
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.dropped, c.sessionUp, c.sessionDowns, c.sessionSent, c.sessionRecv} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.mux.Stats()
	ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(s.Received))
	for _, d := range []struct {
		reason string
		n      uint64
	}{{"malformed", s.Malformed}, {"authentication", s.Authentication}, {"bad_ttl", s.BadTTL}, {"unknown_session", s.UnknownSession}} {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(d.n), d.reason)
	}
	for _, sess := range c.mux.sessions() {
		peer, local := sess.opts.Peer.String(), sess.opts.Local.String()
		up := 0.0
		if sess.State() == Up {
			up = 1
		}
		st := sess.Stats()
		ch <- prometheus.MustNewConstMetric(c.sessionUp, prometheus.GaugeValue, up, peer, local)
		ch <- prometheus.MustNewConstMetric(c.sessionDowns, prometheus.CounterValue, float64(st.Downs), peer, local)
		ch <- prometheus.MustNewConstMetric(c.sessionSent, prometheus.CounterValue, float64(st.Sent), peer, local)
		ch <- prometheus.MustNewConstMetric(c.sessionRecv, prometheus.CounterValue, float64(st.Received), peer, local)
	}
}
