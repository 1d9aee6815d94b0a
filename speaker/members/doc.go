// Package members tells each speaker which speakers are alive, and elects
// the owner of each address among them.
//
// # Election
//
// Owner and Ranking are pure: rendezvous (highest-random-weight) hashing of
// (address, node name) with a fixed hash (FNV-1a 64 finished with murmur3's
// fmix64). Every speaker that sees the same live, eligible nodes computes
// the same owner without talking to anyone; when a node leaves only the
// addresses it owned move, each to its own runner-up, so load stays even.
// While views differ (the few hundred milliseconds a failure takes to reach
// everyone) an address can have two owners or none; the announcers cope
// (gratuitous ARP / unsolicited NA on takeover).
//
// # Liveness
//
// Members wraps hashicorp/memberlist: SWIM-style gossip over UDP and TCP on
// its own port (DefaultPort 7946, both protocols must pass between nodes),
// every packet encrypted and authenticated with an AES key from a Secret
// (AES-GCM; a member with another key, or none, is never admitted) and
// labelled "pier-speaker" so another memberlist cluster on the same port is
// rejected instead of merged. Live is alive plus suspect members (a suspect
// keeps its addresses until it is declared dead). Run joins the peers the
// speaker passes (the other Nodes' addresses), keeps re-joining those that
// are not members (a node that started alone, a healed partition), and on
// shutdown leaves first: the leave is gossiped in a few tens of
// milliseconds, so a SIGTERM'd owner is replaced at once.
//
// # Starting
//
// A member that has just started sees itself alone: a speaker acting on
// that view would claim every address. Settled turns true SettleDelay
// after the first contact with a peer (a join of ours, or a peer joining
// us, each of which exchanges the whole member list), time for the others
// to hear of the newcomer and let go of what it now owns; or SettleTimeout
// after the start when no peer answers (the node is alone).
//
// # Timers
//
// A killed member is declared dead after: the wait until some survivor
// probes it (each member probes one other per ProbeInterval, round robin),
// plus one ProbeInterval (no direct ack within ProbeTimeout, then
// IndirectChecks others and a TCP ping are asked, until the interval ends),
// plus the suspicion timeout SuspicionMult*max(1, log10(n))*ProbeInterval
// (the suspect may refute meanwhile), plus gossip of the verdict
// (GossipInterval). FastLAN, the default:
//
//	ProbeInterval 80 ms, ProbeTimeout 40 ms, IndirectChecks 3
//	SuspicionMult 1 (80 ms up to 10 nodes, 160 ms at 100)
//	GossipInterval 20 ms to GossipNodes 3, RetransmitMult 4
//	AwarenessMaxMultiplier 4, TCPTimeout 1 s, PushPullInterval 5 s
//	GossipToTheDeadTime 5 s, RejoinInterval 2 s, LeaveTimeout 500 ms
//
// Measured in the lab (network namespaces on one bridge, 2 shared cores,
// BenchmarkFailureDetection, two runs of 20 SIGKILLs each), time from the
// kill until every survivor dropped the member: 3 nodes p50 219-227 ms,
// max 309-379 ms; 5 nodes p50 226-233 ms, max 387-392 ms. A graceful
// leave is seen in 2-40 ms; a link taken down is detected like a kill
// (220-310 ms). memberlist's own LAN profile (LAN) takes several seconds.
// Re-measure, as root: go test -run '^$' -bench FailureDetection
// -benchtime 20x ./speaker/members/
//
// The price is false positives. A live member is declared dead when for
// about 160 ms it answers no probe (direct, indirect or TCP) and cannot
// refute the suspicion: a speaker pod throttled by a tight CPU limit (the
// CFS period is 100 ms), a long stall of its node, or a network dropping
// most UDP. Such a verdict heals itself: the accused learns of it (dead
// members still get gossip for GossipToTheDeadTime) and refutes with a
// higher incarnation, so its addresses move away and back within a second.
// Give the speaker CPU without a tight limit, and use LAN() on lossy
// networks. Awareness also makes a member that finds itself slow probe
// less often rather than accuse others. Traffic is small: about 12 probes
// and acks per second per member, gossip only when something changes, and
// a full state exchange with one random member every 5 s.
//
// # Why memberlist
//
// Heartbeats written to the API server (one Lease per node) would need
// several writes per second per node for a sub-second failover, all of them
// through etcd, and would tie failover to the API server's availability:
// when it is slow or down, speakers would either freeze ownership or think
// everyone dead. Gossip runs between the nodes on the network that carries
// the traffic, so it sees exactly the failures that matter (a dead node, a
// dead link) and keeps working without the control plane. Among gossip
// libraries memberlist is the proven one (Consul, Nomad, Serf, and
// MetalLB's users already open port 7946): SWIM with the Lifeguard
// extensions that make aggressive timers usable (indirect probes,
// refutation, suspicion confirmation, self-awareness), encryption with key
// rotation, labels, and a small API. Serf adds events and queries Pier does
// not need; consensus (raft, embedded etcd) answers a question Pier does
// not ask (agreement, not liveness) and stops working without a quorum,
// which a two-node cluster after one failure does not have; a home-made
// UDP heartbeat would have to relearn all of the above.
package members
