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
// A member that misses a probe's ack (direct within ProbeTimeout, then
// through IndirectChecks others and a TCP ping, until the ProbeInterval
// ends) suspects the target and gossips the suspicion; the suspect may
// refute it. memberlist then waits for SuspicionMult-2 other members to
// confirm the suspicion (their own probes failed too): confirmed, it
// becomes a verdict after min = SuspicionMult*max(1, log10(n))*
// ProbeInterval; unconfirmed, only after SuspicionMaxTimeoutMult*min. A
// crash is seen by every prober and confirmed at once; a suspicion only
// one member holds (it stalled, or its own path lost packets) is more
// likely that member's trouble, so it is given time to be refuted. With
// SuspicionMult 1 or 2 memberlist waits for no confirmation: one member
// alone declared a peer dead 80 ms after suspecting it, took over its
// addresses and gossiped the verdict (a just-started speaker did so in the
// lab).
// SuspicionMult 3 asks for one confirmation from 3 nodes up; 4 would ask
// for two, which a 3-node cluster cannot give, so memberlist would wait
// for none there. In a 2-node cluster nobody can confirm: min applies.
//
// A killed member is thus declared dead after: the wait until some
// survivor probes it (each member probes one other per ProbeInterval,
// round robin), plus one ProbeInterval, plus min once a second survivor's
// probe has confirmed it (within (n-1)*ProbeInterval), plus gossip of the
// verdict (GossipInterval). FastLAN, the default:
//
//	ProbeInterval 50 ms, ProbeTimeout 25 ms, IndirectChecks 3
//	SuspicionMult 3: min 150 ms up to 10 nodes, 300 ms at 100
//	SuspicionMaxTimeoutMult 6: a lone suspicion lasts 900 ms (1.8 s at 100)
//	GossipInterval 50 ms to GossipNodes 3, RetransmitMult 4
//	AwarenessMaxMultiplier 4, TCPTimeout 1 s, PushPullInterval 5 s
//	GossipToTheDeadTime 5 s, RejoinInterval 2 s, LeaveTimeout 500 ms
//
// That is about 30+50+150+25 = 255 ms at 3 nodes, at most about
// 100+50+150+50 = 350 ms plus scheduling. GossipInterval was 20 ms until
// 2026-12-06: each tick wakes the process even with nothing to send, and
// at 50 ms an idle member costs about a point of a core less
// (docs/scale.md). Measured in the lab (network
// namespaces on one bridge, 2 shared cores, BenchmarkFailureDetection, two
// runs of 20 SIGKILLs each), time from the kill until every survivor
// dropped the member: 3 nodes p50 229-233 ms, max 283-312 ms; 5 nodes p50
// 239-241 ms, max 344-391 ms. The former profile (80 ms probes,
// SuspicionMult 1) measured the same: 3 nodes p50 222-237 ms, max 308-386
// ms; 5 nodes p50 212-248 ms, max 376-412 ms. A graceful leave is seen in
// a few milliseconds to a few tens; a link taken down is detected like a
// kill (about 300 ms). memberlist's own LAN profile (LAN) takes several
// seconds. Re-measure, as root: go test -run '^$' -bench FailureDetection
// -benchtime 20x ./speaker/members/
//
// The price is false positives. A live member is declared dead when for
// about 200 ms it answers no probe (direct, indirect or TCP) of two
// members and cannot refute meanwhile: a speaker pod throttled by a tight
// CPU limit (the CFS period is 100 ms), a long stall of its node, or a
// network dropping most UDP. BenchmarkStallTolerance freezes one member
// of three (SIGSTOP; two runs of 5 rounds): no false failover for stalls
// up to 150 ms, 0-2 of 5 at 200 ms, 4-5 of 5 at 300 ms, every one from
// 500 ms, as with the former profile (the frozen member misses everyone's
// probes, so the suspicions are confirmed). Such verdicts heal
// themselves: the accused learns of them (dead members still get gossip
// for GossipToTheDeadTime) and refutes with a higher incarnation, so its
// addresses move away and back within a second. Give the speaker CPU
// without a tight limit, and use LAN() on lossy networks. Awareness also
// makes a member that finds itself slow probe less often rather than
// accuse others.
//
// What the confirmations change is the lone suspicion: a member that
// hears nobody for half a second (TestLoneSuspicionIsNotAVerdict) dropped
// its live peers after 150-400 ms with the former profile, and keeps them
// now. A member that got no CPU finds its peers' refutations in its
// socket buffers when it runs again. If they were lost instead (its
// inbound path dropped them), its suspicions still expire into verdicts
// after 900 ms, which only it acts on: memberlist does not repeat a
// refutation for a suspicion with an old incarnation, so it takes the
// peers back at its next join or push-pull.
//
// Traffic is small: 20 probes and their acks per second per member (12.5
// with the former 80 ms interval), gossip only when something changes,
// and a full state exchange with one random member every 5 s. An idle
// member of three used 3.3-3.8 % of a core in the lab (2.4-2.6 % with the
// former profile).
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
