package bfd

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMux(nil)
	NewCollector(m, reg)
	s, err := New(Options{Local: netip.MustParseAddr("198.51.100.11"), Peer: netip.MustParseAddr("198.51.100.1"), Mux: m})
	if err != nil {
		t.Fatal(err)
	}
	// What attach and Run would do, without sockets.
	m.byDiscr[1] = s
	s.state.Store(uint32(Up))
	s.sent.Add(5)
	s.downs.Add(1)
	m.received.Add(9)
	m.badTTL.Add(2)
	m.auth.Add(1)

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
		}
	}
	const labels = " local=198.51.100.11 peer=198.51.100.1"
	want := map[string]float64{
		"pier_speaker_bfd_received_packets_total":                       9,
		"pier_speaker_bfd_dropped_packets_total reason=malformed":       0,
		"pier_speaker_bfd_dropped_packets_total reason=authentication":  1,
		"pier_speaker_bfd_dropped_packets_total reason=bad_ttl":         2,
		"pier_speaker_bfd_dropped_packets_total reason=unknown_session": 0,
		"pier_speaker_bfd_session_up" + labels:                          1,
		"pier_speaker_bfd_session_down_total" + labels:                  1,
		"pier_speaker_bfd_session_sent_packets_total" + labels:          5,
		"pier_speaker_bfd_session_received_packets_total" + labels:      0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
