// Package speaker runs on every node and decides what the node announces.
//
// The decision is two pure steps. Targets turns what the API server says
// (Pier's configuration, Services with addresses, EndpointSlices, Nodes)
// into, for each announced address, the nodes allowed to answer for it and
// on which interfaces. Plan picks, for each target, the owner among the
// nodes that are alive right now (memberlist) and have an interface whose
// subnet holds the address; every speaker computes the same owner from the
// same inputs (rendezvous hashing, members.Owner), so no coordination
// round-trip is needed. The speaker then hands the whole set this node owns
// to idempotent announcers (l2 for ARP/NDP, bgp, vip for local
// addresses). An announcer that cannot apply part of the set applies the
// rest; the pass counts the failure (pier_speaker_apply_failures_total)
// and the next one, a Resync later at the latest, hands over the whole set
// again.
//
// What the node does is written apart from the announcing loop, each by
// its own writer: ServiceL2Status per Service it answers for (RunL2Status),
// BGPSessionStatus per peer (RunBGPStatus), BGPAnnouncementStatus listing
// the Services it announces over BGP (AnnouncementWriter, one object per
// node) and its ConfigurationStatus (configstatus.Writer).
//
// Targets are persisted on the node after every change, so a speaker that
// restarts while the API server is unreachable keeps announcing what it
// last knew, still following liveness changes among the speakers.
package speaker
