// Package bgp announces the node's addresses to BGP routers through an
// embedded gobgp v3 server.
//
// An Announcer is idempotent: SetPeers and SetPaths take the whole desired
// set and change only the difference. A peer is reset only when its own
// settings change; a path change never resets a session.
//
// # No gRPC
//
// gobgp's gRPC API is never started: it would be an unauthenticated control
// port on every node (anyone reaching it could announce anything), and the
// speaker drives gobgp in-process anyway. gobgp also listens on no BGP port
// by default (ListenPort -1): the speaker only dials out to its peers.
//
// # Network namespace: run the announcer as a process in the node's namespace
//
// gobgp dials every peer from goroutines of its own (one connect loop per
// peer, started from its FSM goroutines), not from the goroutine that calls
// AddPeer. Linux network namespaces belong to OS threads, and Go moves
// goroutines between threads freely, so wrapping gobgp calls in a
// namespace-switching hook (as lab.Host.Do does) would not put the sessions
// in that namespace. The announcer therefore has no namespace hook: it
// opens its sockets in the namespace of the process it runs in. The speaker
// runs it in the node's namespace (hostNetwork, or a process started in the
// namespace, as the lab tests do).
//
// # Per-peer paths
//
// gobgp sends every path of its RIB to every peer, and applies per-peer
// policies only to route-server clients (which would not prepend the node's
// AS). So the global export policy, whose default action is reject, holds
// one policy per peer, "pier-export-<name>": it accepts a path when the
// receiving peer is that peer (a neighbor set of its address) and the
// prefix is in the peer's own prefix sets (one for IPv4, one for IPv6).
// SetPaths keeps those sets equal to the paths that name the peer (or name
// no peer). A prefix carries one set of attributes for all its
// peers: SetPaths refuses two paths for the same prefix (ErrDuplicatePrefix),
// so merging advertisements is the caller's job. When the peer list of an
// existing prefix changes, the prefix is withdrawn (under the old sets) and
// announced again (under the new ones), because gobgp does not withdraw a
// path that a changed policy now rejects: peers that keep the prefix see a
// withdraw and an update in quick succession.
//
// # Stopping
//
// When Run's context ends the announcer withdraws every path, then queues a
// Cease (administrative shutdown) behind the withdrawals on each session,
// waits (StopTimeout) for the sessions to go down and stops gobgp. The
// router therefore hears the withdrawals first; FRR may still drop part of
// them unprocessed when it handles the closed session, which removes the
// routes just the same. Graceful restart does not keep them: the announcer
// does not advertise the RFC 8538 N-bit, so a Cease ends the session for
// good.
//
// # Secrets and logs
//
// Peer.Password is the TCP MD5 key; reading it from a Secret is the
// caller's job. It is never logged: the gobgp log adapter redacts any
// configured password from messages and fields, and the announcer's own
// logs name only whether a password is set.
//
// # Families and next hops
//
// IPv4 paths go over sessions carrying ipv4-unicast and IPv6 paths over
// sessions carrying ipv6-unicast, whatever the session's own family. A
// path's next hop is the session's local address, except for a family
// other than the session's: there gobgp would put the session's address
// (an IPv4 address as ::ffff:a.b.c.d for IPv6 paths), which a router
// cannot use. So a peer carries a next hop per family (Peer.NextHop4,
// Peer.NextHop6; the speaker gives the node's own address of that family)
// and the peer's export policy statement for that family sets it with a
// next-hop action: gobgp applies export policies after its own next-hop
// handling, per receiving peer, so the same path leaves with the session's
// address to one peer and the configured one to another. A peer that
// carries the other family without such a next hop gets no paths of that
// family (and the announcer logs a warning). Tested against FRR both ways:
// IPv6 paths over an IPv4 session and IPv4 paths over an IPv6 one.
//
// Local preference is sent to iBGP peers only (gobgp strips it towards
// eBGP peers, as RFC 4271 requires).
//
// # Received routes
//
// A speaker uses no route: the global import policy accepts only the
// announcer's own paths (gobgp runs those through it too) and rejects
// everything peers send. gobgp still keeps each received path per peer
// (its adj-RIB-in) before any policy runs, so a router leaking a full
// table would grow every speaker at once. Peer.MaxPrefixes (default
// DefaultMaxPrefixes per family) bounds that: one prefix more and gobgp
// closes the session with a Cease (maximum number of prefixes reached)
// and drops the peer's paths, then dials again after its idle hold time;
// the speaker's paths to other peers stay. The announcer logs the event
// once per session, counts it in pier_bgp_prefix_limit_exceeded_total
// {peer} and puts it in PeerStatus.LastError (BGPSessionStatus lastError).
// The limit counts the paths the router sends back from the other
// speakers too (dropped for the AS loop, but kept), so it must stay above
// the prefixes the cluster announces in one family. TestPrefixFloodFromPeer
// floods it with 200,000 prefixes from FRR and checks the heap returns to
// its baseline.
//
// # BFD
//
// A peer with BFD gets a speaker/bfd session on the announcer's one Mux,
// from its SourceAddress or the address the kernel picks towards it. When
// the session goes from Up to Down, unless the peer's side is AdminDown
// (RFC 5882 §3.2), the gobgp neighbor is disabled, which sends a Cease and
// keeps it Idle until BFD is Up again; ResetPeer would dial again at once,
// over a path BFD calls broken. gobgp drops an admin state request that
// comes while another is pending, so the hold compares gobgp's admin state
// with what BFD asks after each request and every second. BFD settings
// never reset the BGP session: intervals change in place (a poll
// sequence), other changes restart the BFD session. TestBFDWithFRR and
// TestBFDWithBIRD run it against FRR's bfdd and BIRD; BenchmarkFailover
// measures a failed node's withdrawal with and without it.
package bgp
