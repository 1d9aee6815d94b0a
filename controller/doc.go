// Package controller assigns LoadBalancer addresses to Services.
//
// One controller is active at a time (leader election on a Lease). It
// watches Services, Pier's IPAddressPools and Namespaces through informers
// and reconciles one Service at a time: it turns the Service into an
// allocator.Request (families, requested addresses, pool, sharing key,
// ports, labels), asks the allocator, and writes status.loadBalancer.ingress
// and the pier.dev/ip-allocated-from-pool annotation, with an event for
// every assignment and every failure.
//
// Before it assigns anything, the controller restores every assignment it
// finds in Service status into the allocator, oldest Service first, so a
// restart or a leader change never moves an address that is in use. Pool
// edits are applied with allocator.SetPools, which never moves an address
// either: Services left outside every pool keep their address and get an
// AddressOrphaned warning event (the speakers keep announcing an orphan
// until it is released). A pool at fault (as config.Parse judges it) is
// left out with an InvalidPool event and counted; the valid pools apply.
// Every pool's Valid condition says which: True (Accepted) or False
// (Invalid, with the faulty fields as config.Parse words them), written
// by the leader only when it changes.
//
// The manager (NewManager) runs the Relay controller, package relayctl,
// beside it on the leader, and the validating webhook on every replica.
package controller
