// Package relay is the L4 TCP/UDP relay behind a LoadBalancer address: it
// sends each flow to the backend that owns it whichever node receives it.
//
// Placement: every listener has a Maglev lookup table (maglev.go) over its
// healthy backends. The key is the client's address and port (or the address
// only, Options.KeyByAddressOnly), hashed with a fixed FNV-1a based hash, so
// every relay instance with the same backend set picks the same backend for
// the same client. Once placed, a flow stays on its backend while that
// backend is up, whatever happens to the backend set.
//
// UDP (udp.go): one socket per listener; per flow a connected upstream socket
// to the backend, so replies are matched by the kernel, and a reader
// goroutine that sends replies back to the client from the address the
// client sent to (IP_PKTINFO / IPV6_PKTINFO when the listener is bound to a
// wildcard). Flows expire after Options.UDPIdleTimeout and the flow table is
// bounded by Options.MaxFlows per listener: when full, new flows are dropped
// (pier_relay_drops_total{reason="table-full"}) and existing flows go on.
// Memory per UDP flow: about 190 bytes of table entry (map slot, Flow and
// udpFlow; BenchmarkFlowTableMemory), one reply buffer of
// Options.MaxDatagramSize bytes (default 2 KiB), a goroutine stack (from
// 8 KiB) and one socket (kernel buffers not counted): about 11 KiB of user
// memory, so the default 100,000 flows per listener stay near 1.1 GiB.
//
// The datagram path allocates nothing per packet (BenchmarkUDPRelay reports
// 0 allocs/op): one receive buffer per listener with headroom for the PROXY
// header, one reply buffer per flow, recvmsg/sendmsg through
// ReadMsgUDPAddrPort/WriteMsgUDPAddrPort, the reply IP_PKTINFO control
// message marshalled once per flow (x/net ipv4/ipv6 ControlMessage) and the
// received one parsed in place (pktinfo.go).
//
// recvmmsg/sendmmsg were tried and left out because they did not pay:
// x/net's ReadBatch allocates a net.UDPAddr (and its IP) for every message of
// a batch, and an allocation-free raw recvmmsg on the listener socket gave no
// measurable gain in BenchmarkUDPRelay or BenchmarkUDPRelayManyFlows (about
// 49,000 datagrams/s each way with 64 flows, with and without it, on two
// shared cores): the cost is in the per-flow reply path and the scheduler,
// not in the listener's system calls. Replies leave from one goroutine per
// flow, so there is no batch to write either.
//
// TCP (tcp.go): accept, pick, dial with Options.ConnectTimeout, then copy both
// ways with io.Copy between *net.TCPConn so the kernel may splice, passing
// half-closes on with CloseWrite; a connection idle in both directions for
// Options.TCPIdleTimeout is closed.
//
// PROXY protocol v2 (proxyproto.go): backends with ProxyProtocol set get a v2
// header before the TCP stream, and in front of every UDP datagram (the v2
// specification allows a header per datagram for SOCK_DGRAM: each datagram
// is self-contained, so the backend reads the header off each one).
//
// Health (health.go): a TCP connect failure or ICMP port unreachable (seen as
// ECONNREFUSED on a connected UDP socket) marks a backend down and rebuilds
// the tables at once. The active check connects to every backend's health
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
