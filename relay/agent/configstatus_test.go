package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/lab"
)

func TestRefusedErr(t *testing.T) {
	if err := refusedErr(map[Key]error{}); err != nil {
		t.Errorf("none refused: %v", err)
	}
	b := &config.Error{Kind: "Relay", Namespace: "a", Name: "b", Field: "spec.dataPath", Message: "no"}
	a := &config.Error{Kind: "Relay", Namespace: "a", Name: "a", Field: "spec.listeners", Message: "no"}
	got := config.Errors(refusedErr(map[Key]error{{Namespace: "a", Name: "b"}: errors.Join(b), {Namespace: "a", Name: "a"}: errors.Join(a)}))
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("refusedErr: %v, want a/a then a/b", got)
	}
}

// Against a real API server: a Relay the CRD's schema lets through and
// config refuses shows in this node's ConfigurationStatus (relay-<node>)
// with object and field, and clears when fixed.
func TestRelayConfigStatus(t *testing.T) {
	e := newBenchEnv(t)
	port := freeUDPPort(t)
	r := calls(benchNS, "r", kernelToken, func(r *v1alpha1.Relay) {
		r.Spec.Listeners = []v1alpha1.RelayListener{{Name: "calls", Protocol: corev1.ProtocolUDP, Port: int32(port)}}
	})
	e.create(t, &r)
	owner := &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "pier-relay-x", UID: "uid-1"}
	a, err := New(Options{Config: e.cl.Config, NodeName: benchNode, Namespace: "pier-system", StatusNamespace: "pier-system",
		Owner: owner, Bind: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	status := func() (v1alpha1.ConfigurationStatusStatus, error) {
		var obj v1alpha1.ConfigurationStatus
		err := e.c.Get(ctx, client.ObjectKey{Namespace: "pier-system", Name: "relay-" + benchNode}, &obj)
		if err == nil && (len(obj.OwnerReferences) != 1 || obj.OwnerReferences[0].UID != owner.UID) {
			err = fmt.Errorf("owners %v, want the relay's Pod", obj.OwnerReferences)
		}
		return obj.Status, err
	}
	lab.Poll(t, "the refused Relay in the status", 50*time.Millisecond, time.Minute, func() error {
		st, err := status()
		if err != nil {
			return err
		}
		if st.Valid || len(st.Problems) == 0 || st.Component != "relay" || st.Node != benchNode {
			return fmt.Errorf("status %+v", st)
		}
		if p := st.Problems[0]; p.Kind != "Relay" || p.Namespace != benchNS || p.Name != "r" || p.Field != "spec.dataPath" {
			return fmt.Errorf("problem %+v, want Relay %s/r at spec.dataPath", p, benchNS)
		}
		return nil
	})
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(&r), &r); err != nil {
		t.Fatal(err)
	}
	r.Spec.DataPath = ""
	if err := e.c.Update(ctx, &r); err != nil {
		t.Fatal(err)
	}
	lab.Poll(t, "valid after the fix", 50*time.Millisecond, time.Minute, func() error {
		st, err := status()
		if err == nil && (!st.Valid || len(st.Problems) > 0) {
			err = fmt.Errorf("status %+v", st)
		}
		return err
	})
}
