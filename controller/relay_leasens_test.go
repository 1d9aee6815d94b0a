package controller_test

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/controller"
)

// TestRelayLeaseNamespace: with RelayLeaseNamespace the relays' Leases are
// read there (the relays' write access stays away from the leader Lease),
// and Leases of relays not yet upgraded, in Pier's namespace, still count;
// a Lease anywhere else does not.
func TestRelayLeaseNamespace(t *testing.T) {
	const relaysNS = "pier-relays"
	e := newEnv(t)
	e.create(&corev1.Namespace{ObjectMeta: metaName(appNS)})
	e.create(&corev1.Namespace{ObjectMeta: metaName(relaysNS)})
	e.create(pool("relays", "198.51.100.200-198.51.100.210"))
	e.startController(func(o *controller.ManagerOptions) { o.RelayLeaseNamespace = relaysNS })
	e.create(relayObj("edge"))
	now := time.Now()
	inNS := func(ns, node string) *coordinationv1.Lease {
		l := lease("edge", node, now, 3600)
		l.Namespace = ns
		return l
	}
	e.create(inNS(relaysNS, "node1"))
	e.create(inNS(pierNS, "node2")) // an old relay
	e.waitRelay("edge", "counted the Leases in both namespaces", func(r *v1alpha1.Relay) bool { return r.Status.ReadyRelays == 2 })
	e.create(inNS(appNS, "node3")) // not a relays' namespace
	e.create(inNS(relaysNS, "node4"))
	got := e.waitRelay("edge", "counted node4", func(r *v1alpha1.Relay) bool { return r.Status.ReadyRelays >= 3 })
	if got.Status.ReadyRelays != 3 {
		t.Errorf("readyRelays %d, want 3 (node3's Lease is outside the relays' namespaces)", got.Status.ReadyRelays)
	}
}
