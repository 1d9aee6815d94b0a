package agent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// TestAgentReadsOnChange: against a real API server, the agent's cache
// raises an event only for what the agent runs: writes of EndpointSlices
// of Services no Relay names make it read nothing, a change of its Relay's
// backend slice makes it read once and reaches the running relay.
func TestAgentReadsOnChange(t *testing.T) {
	e := newBenchEnv(t)
	e.create(t, &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: "relay-0"},
		Spec: v1alpha1.RelaySpec{
			Backend:   v1alpha1.RelayBackend{ServiceName: benchService(0)},
			Listeners: []v1alpha1.RelayListener{{Name: "calls", Protocol: corev1.ProtocolUDP, Port: int32(freeUDPPort(t))}},
		},
	})
	for i := range 3 {
		e.create(t, benchSlice(i, 1))
	}
	ag := e.runAgent(t)
	backends := func() int { return ag.gauge("pier_relay_backend_up", benchNS+"/relay-0") }
	ag.wait(t, "the Relay served with its one backend", func() bool {
		return ag.gauge("pier_relay_agent_served_relays", "") == 1 && backends() == 1
	})
	reads := ag.gauge("pier_relay_agent_api_reads_total", "")

	for i := 3; i < 23; i++ {
		e.create(t, benchSlice(i, 1))
	}
	e.setEndpoints(t, 1, 2)
	e.setEndpoints(t, 0, 2) // after the others: the informer delivers them in order
	ag.wait(t, "the added backend", func() bool { return backends() == 2 })
	if got := ag.gauge("pier_relay_agent_api_reads_total", "") - reads; got != 1 {
		t.Errorf("21 writes of other Services' slices and one of the backend's: %d reads, want 1", got)
	}
	t.Logf("%d reads to start", reads)
}
