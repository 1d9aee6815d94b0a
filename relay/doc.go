// Package relay is the L4 TCP/UDP relay behind a LoadBalancer address: it
// sends each flow to the backend that owns it whichever node receives it.
//
// Placement: every listener has a Maglev lookup table (maglev.go) over its
// healthy backends, each owning a share of the table proportional to its
// weight on that listener (Backend.Weights; none: weight 1 everywhere;
// weight 0: no new flows). The key is the client's address and port (or the address
// only, Options.KeyByAddressOnly), hashed with a fixed FNV-1a based hash, so
// every relay instance with the same backend set picks the same backend for
// the same client. Once placed, a flow stays on its backend while that
// backend is up, whatever happens to the backend set. The backends and the
// tables are one immutable version (plane), replaced whole by a backend or
// health change: a new flow reads it without a lock, and never a table
// naming a backend its version lacks.
//
// UDP (udp.go): per listener a group of Options.UDPSockets sockets
// (default GOMAXPROCS) bound with SO_REUSEPORT, one reader goroutine each
// (reuseport.go): the kernel hashes a datagram's addresses and ports to one
// socket of the group, so a flow always reaches the same reader while
// different flows are read in parallel. The readers share the flow table
// (lookups take a read lock). Per flow a connected upstream socket to the
// backend, so replies are matched by the kernel, and a reader goroutine
// that sends replies back to the client from the address the client sent to
// (IP_PKTINFO / IPV6_PKTINFO when the listener is bound to a wildcard),
// through the socket that received the flow. Flows expire after
// Options.UDPIdleTimeout and the flow table is bounded by Options.MaxFlows
// per listener: when full, new flows are dropped
// (pier_relay_drops_total{reason="table-full"}) and existing flows go on.
// Memory per UDP flow: a table entry (BenchmarkFlowTableMemory), a
// goroutine and one socket: about 4 KiB of RSS in the whole process, 1.1
// KiB of it heap and 2 KiB stack (BenchmarkUDPRelayHeld, README; kernel
// buffers not counted). Reply buffers are not per flow: a flow takes a
// batch from a small free list only while it moves datagrams. Each flow's
// socket also holds an ephemeral port of the node, so the node's port range
// (28,232 ports by default, shared with its other sockets) bounds the flows
// before the default MaxFlows does; flows past it, or past the open file
// limit, are dropped as local-limit (Run warns of both limits).
//
// The datagram path allocates nothing per packet (BenchmarkUDPRelay reports
// 0 allocs/op). On Linux (udp_linux.go, mmsg_linux.go) both directions move
// up to 16 datagrams per system call: each listener socket is read with
// recvmmsg, each flow's upstream socket with recvmmsg and its replies are
// written with one sendmmsg, all raw system calls on the sockets' file
// descriptors through syscall.RawConn (x/net's ReadBatch allocates a
// net.UDPAddr per message), with fixed buffers, addresses parsed and built
// in place, the reply IP_PKTINFO control message marshalled once per flow
// (x/net ipv4/ipv6 ControlMessage) and the received one parsed in place
// (pktinfo.go). Datagrams from the listener go upstream one write each.
// Elsewhere the relay reads and writes one datagram per call
// (udp_other.go).
//
// One reader goroutine per socket of a SO_REUSEPORT group is what lets
// batching help: recvmmsg on a single socket left that reader as the
// serialization point. What remains per datagram is mostly the kernel's
// UDP send and receive work, which batching does not reduce (figures:
// README, e2e/relaybench).
//
// Kernel data path (kernel.go, package kernelpath; Options.Kernel): the
// datagrams of a UDP flow need not reach the relay at all. The relay
// writes each UDP listener's Maglev table into an nftables map; the new
// flow's first datagram is hashed by the kernel (jhash, which HashKey
// reproduces, so the relay, the kernel and every node pick the same
// bucket), DNATed to the bucket's backend and masqueraded, and conntrack
// carries the rest of the flow both ways. Buckets the kernel cannot serve
// (a backend of the other address family, one wanting PROXY headers) are
// not in the map: their flows reach the relay's socket as before, on the
// same backend. A backend going down rewrites the map (a quarter of a
// 65,537-bucket map for one of four backends: BenchmarkApply*) and
// deletes its conntrack entries so its flows are placed again; flows
// survive a relay restart. The kernel is written by one goroutine of Run
// (syncKernel): a change only signals it, changes made during a write
// coalesce into one more write of the latest version, and a failed write
// is counted (pier_relay_kernel_sync_errors_total) and tried again, so a
// slow or failing netlink request never holds up a new flow in user space.
// The process-wide part (the tag naming the process's tables, its anchor
// table) is Options.Kernel.Tables, one per process; NewFakeKernel stands
// in for it where nothing may be written.
//
// TCP (tcp.go): accept, pick, dial with Options.ConnectTimeout, then copy both
// ways with splice (tcpcopy_linux.go), passing half-closes on with
// CloseWrite; a connection idle in both directions for
// Options.TCPIdleTimeout is closed. A direction waits for data without a
// pipe and takes one from a small free list only while it moves data
// (io.Copy's splice held a pipe pair for as long as it waited): a
// connection holds two goroutines and two sockets, about 15 KiB of RSS
// (BenchmarkTCPRelayHeld, README).
//
// Routing token (token.go, Options.Token): optionally a byte range of a new
// flow's first UDP datagram or first TCP bytes names its backend (trailing
// NUL and space bytes trimmed, matched against Backend.Name), so a client
// that knows its call's server reaches it through any relay. A token that
// is too short, names no backend or a down one places the flow by Maglev;
// each placement is counted in pier_relay_token_routed_total{proto,result}.
// Only new flows read it (a UDP flow placed again after its backend went
// down is placed by Maglev); once placed a flow stays as any other. For TCP
// the relay reads up to the token's end, for at most TokenOptions.Timeout,
// before it dials, then sends those bytes first (after the PROXY header)
// and copies the rest as usual; a server-speaks-first protocol thus waits
// the timeout. The kernel data path places flows before any payload is
// seen, so it stays off when a token is configured.
//
// PROXY protocol v2 (proxyproto.go): backends with ProxyProtocol set get a v2
// header before the TCP stream, and in front of every UDP datagram (the v2
// specification allows a header per datagram for SOCK_DGRAM: each datagram
// is self-contained, so the backend reads the header off each one).
//
// Health (health.go): a TCP connect failure or ICMP port unreachable (seen as
// ECONNREFUSED on a connected UDP socket) marks a backend down and rebuilds
// the tables at once; a connect that fails for want of a local descriptor
// or port (EMFILE, EADDRNOTAVAIL...) does not. The active check connects to every backend's health
// port (Backend.HealthPort, else its port of the first TCP listener) every
// Options.HealthInterval (300 ms by default) with a timeout of one
// interval: an up backend that refuses is marked down at once, one that does
// not answer twice in a row too (a host gone silent, with no RST and no
// ICMP, is out within three intervals, under a second by default; one slow
// probe on a loaded node does not move a healthy server's flows), and a down
// one that passes is marked up. UDP flows on a down backend are placed again on their next
// datagram. A backend with no TCP port to check (UDP listeners only and no
// health port) has the passive check only: a dead process is noticed by
// its ICMP port unreachable, but a host that goes silent is not (Linux
// hands ICMP host unreachable to a UDP socket only with IP_RECVERR) until
// its endpoint leaves the EndpointSlice; set Backend.HealthPort
// (spec.backend.healthCheckPort) for such backends. A down backend without
// a health port is tried again 10 intervals after it went down.
//
// Drain: when Run's context ends the relay stops accepting, closes UDP flows,
// lets TCP connections finish for up to Options.DrainTimeout and then closes
// them.
package relay
