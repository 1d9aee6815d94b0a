package kubelab

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/lab"
)

// installSpeakers writes the gossip key, announces every pool on the L2
// segment and starts a speaker on every node.
func (e *Env) installSpeakers(ctx context.Context, bin string) error {
	e.speakerBin = bin
	e.speakerKey = filepath.Join(e.Cluster.Dir, "memberlist.key")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(e.speakerKey, key, 0o600); err != nil {
		return err
	}
	adv := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lab-l2", Namespace: PierNamespace}}
	if err := e.Pier.Create(ctx, adv); err != nil {
		return fmt.Errorf("create L2Advertisement: %w", err)
	}
	e.Speakers = make([]*lab.Process, len(e.Site.Nodes))
	for i := range e.Site.Nodes {
		if _, err := e.StartSpeaker(i); err != nil {
			return err
		}
	}
	return nil
}

// speakerNice is the speakers' scheduling priority in the lab. The lab runs
// every node's processes, the control plane and parallel test packages
// (race-instrumented) on the machine's few shared cores; at nice 0 a
// speaker can wait long enough for a CPU that its peers declare it dead
// (FastLAN: about 200 ms without an answer, see speaker/members) and its
// addresses move, which a node's cgroups (the speaker Pod's CPU request)
// prevent on a real cluster. That is the likely cause of a CI failure
// of relaymode's TestFlood (the flood's address seemed to move mid-flood).
const speakerNice = "-5"

// StartSpeaker starts (or restarts) the speaker of node i (0-based) with
// Options.SpeakerArgs and extra flags, at speakerNice. Its state directory
// survives restarts.
func (e *Env) StartSpeaker(i int, extra ...string) (*lab.Process, error) {
	n := e.Site.Nodes[i]
	v4, _ := lab.NodeAddrs(i + 1)
	args := append([]string{
		"--kubeconfig", e.NodeKubeconfig, "--namespace", PierNamespace,
		"--node-name", n.Name, "--bind-addr", v4.Addr().String(),
		"--memberlist-key-file", e.speakerKey,
		"--state-dir", filepath.Join(e.Cluster.Dir, "speaker-"+n.Name),
	}, slices.Concat(e.speakerArgs, extra)...)
	p, err := n.Start("nice", append([]string{"-n", speakerNice, e.speakerBin}, args...)...)
	if err != nil {
		return nil, err
	}
	e.Speakers[i] = p
	return p, nil
}
