package agent

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// AcceptedFile, in Options.StateDir beside StateFile, keeps the Relays as
// last accepted: a Relay changed into one config refuses is served as it
// was accepted, and that holds across a restart of the agent too. A file
// of its own, so that an older agent (a rollback) still reads StateFile.
const AcceptedFile = "accepted.json"

// acceptedRelay is one Relay as accepted: what Desired reads of it.
type acceptedRelay struct {
	Namespace string             `json:"namespace"`
	Name      string             `json:"name"`
	Spec      v1alpha1.RelaySpec `json:"spec"`
}

// encodeAccepted is the saved form of accepted, sorted by key.
func encodeAccepted(accepted map[Key]*v1alpha1.Relay) ([]byte, error) {
	out := []acceptedRelay{}
	for k, r := range accepted {
		out = append(out, acceptedRelay{Namespace: k.Namespace, Name: k.Name, Spec: r.Spec})
	}
	slices.SortFunc(out, func(a, b acceptedRelay) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return json.Marshal(out)
}

// loadAccepted reads the saved accepted Relays; no file is none.
func loadAccepted(path string) (map[Key]*v1alpha1.Relay, error) {
	var saved []acceptedRelay
	if err := readStrict(path, &saved); err != nil {
		return nil, fmt.Errorf("read accepted relays %s: %w", path, err)
	}
	out := make(map[Key]*v1alpha1.Relay, len(saved))
	for _, r := range saved {
		if r.Namespace == "" || r.Name == "" {
			return nil, fmt.Errorf("read accepted relays %s: a relay without a name", path)
		}
		out[Key{Namespace: r.Namespace, Name: r.Name}] = &v1alpha1.Relay{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name}, Spec: r.Spec}
	}
	return out, nil
}

// restoreAccepted takes the Relays a previous run accepted, before the
// first read of the API: one refused now is served as it was accepted.
func (a *Agent) restoreAccepted() {
	if a.acceptedFile.path == "" {
		return
	}
	accepted, err := loadAccepted(a.acceptedFile.path)
	if err != nil {
		a.log.Warn("ignoring the saved accepted Relays", "err", err)
		return
	}
	a.accepted = accepted
}

// saveAccepted writes accepted when it changed.
func (a *Agent) saveAccepted(accepted map[Key]*v1alpha1.Relay) {
	data, err := encodeAccepted(accepted)
	if err != nil {
		a.log.Warn("encode accepted relays", "err", err)
		return
	}
	if _, err := a.acceptedFile.write(data); err != nil {
		a.metrics.stateWriteFailures.Inc()
		a.log.Warn("cannot save the accepted Relays (a Relay refused after a restart would not be served)", "err", err)
	}
}
