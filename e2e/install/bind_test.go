package install

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMetricsNotOnAllAddresses: /metrics and /healthz listen on the node's
// address (hostNetwork speaker and relay) or the Pod's (controller), never
// on all addresses: a node's wildcard socket also answers on every
// LoadBalancer address the node holds. The daemons take the address from
// NODE_IP or POD_IP; no rendering may override it with a wildcard.
func TestMetricsNotOnAllAddresses(t *testing.T) {
	wantEnv := map[string]map[string]string{
		"pier-speaker":    {"NODE_IP": "status.hostIP"},
		"pier-relay":      {"NODE_IP": "status.hostIP"},
		"pier-controller": {"POD_IP": "status.podIP"},
	}
	for _, r := range renderings(t) {
		t.Run(r.name, func(t *testing.T) {
			for name, s := range podSpecs(t, parse(t, r.data)) {
				want, ok := wantEnv[name]
				if !ok {
					continue
				}
				c := s.Containers[0]
				for _, a := range c.Args {
					if strings.HasPrefix(a, "--metrics-addr=:") || strings.HasPrefix(a, "--health-addr=:") {
						t.Errorf("%s listens on all addresses: %s", name, a)
					}
				}
				got := map[string]string{}
				for _, e := range c.Env {
					if _, ok := want[e.Name]; ok && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
						got[e.Name] = e.ValueFrom.FieldRef.FieldPath
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s address env (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}
