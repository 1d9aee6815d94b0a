// Package agent runs Pier's relays on a node from the API: it watches Relay
// objects (all namespaces), the EndpointSlices of their backend Services and
// this node's Node object, and for every Relay whose node selector picks this
// node runs one relay.Relay built from the Relay's configuration as
// config.ParseRelay returns it (ConfigOf, Config.RelayOptions): the rules
// the webhook and the controller apply. A Relay that config refuses is not
// served; one served before keeps its last valid configuration (logged once,
// counted in pier_relay_agent_invalid_relays), so a node never runs a Relay
// the controller reports invalid.
//
// The agent reads its API cache only when an informer event changed what
// it reads (a Relay, this Node, or an EndpointSlice of a Service a Relay
// names: the cache indexes slices by Service, and the events of the other
// slices, most of a cluster's, are ignored); its resync tick only retries
// the relays whose ports were busy or that stopped. An idle agent so does
// no work that grows with the cluster. The cache keeps of a slice and of
// the Node only what the agent reads.
//
// What runs is computed by a pure function (Desired) from the cached API
// objects, then applied: a change of backends goes to the running relay
// (SetBackends: placed flows stay on their backend), a change of listeners,
// timeouts, limits or routing replaces the relay (the old one drains, the new
// one binds the same ports), and a Relay that is deleted or no longer selects
// this node is drained and stopped.
//
// Listeners bind the wildcard address (the IPv6 one, dual-stack, or the IPv4
// one where the node has no IPv6), so the Relay's LoadBalancer address (a
// local address of the node that announces it), the node's own addresses
// (HostNetwork exposure) and NodePort traffic all reach the relay.
//
// Backends are the ready endpoints of the EndpointSlices labelled
// kubernetes.io/service-name=<spec.backend.serviceName>, one per endpoint,
// named by hostname, else target name, else address: Maglev hashes the
// names, so every relay derives the same ones. A dual-stack backend Service
// lists each server twice (one slice per family); the IPv4 entry is kept.
//
// While it serves a Relay the agent renews a Lease in Pier's namespace
// (v1alpha1.RelayLeaseName), from which the controller counts ready relays,
// and deletes it when it stops serving. When the API server is unreachable
// the informer caches keep the last view and the relays go on with it.
package agent
