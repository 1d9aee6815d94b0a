// Package kernelpath moves a relay's UDP flows into the kernel: nftables
// DNAT picks the backend of a new flow from the relay's own Maglev table,
// conntrack keeps the flow on it, and masquerading brings the replies back
// through the node, which sends them from the address and port the client
// sent to. The relay process never sees these datagrams.
//
// Placement agrees with the relay's: the rule hashes the client's address
// and port with the kernel's jhash (Hash is the same function in Go) into
// the same Maglev table, written into an nftables map from bucket to
// backend address and port. A bucket whose backend the kernel cannot reach
// by NAT (another address family, a PROXY protocol backend) is left out of
// the map: its flows miss the lookup and reach the relay's socket, which
// places them on the same backend.
//
// Per listener, in one table of family inet:
//
//	nat prerouting (-105)  UDP to the port and a local address, or to one of
//	                       the listener's VIPs (addresses the node does not
//	                       have, which kube-proxy's NAT chain at -100 would
//	                       otherwise translate to the node first): jump to
//	the listener's chain   ct timeout set <the listener's idle timeout>
//	                       ct count over MaxFlows: count and drop
//	                       jhash(saddr . sport) -> bucket -> map -> ct mark |= CtMark, dnat
//	filter forward (0)     ct mark & CtMark: count packets and bytes each way
//	nat postrouting (110)  ct mark & CtMark: masquerade
//
// The NAT chains see only the first datagram of a flow; conntrack carries
// the rest, so changing the map moves no existing flow and a relay restart
// (the table deleted and written again) leaves flows running. Forget
// deletes the conntrack entries of a backend that went down so that its
// flows are placed again on their next datagram.
//
// Anchor writes a table that only keeps NAT and conntrack on in the
// network namespace: the kernel unhooks NAT when the namespace's last NAT
// chain goes (and conntrack when its last user goes), and running flows
// would then lose their translation and reach the relay's sockets until the
// next table is written.
//
// Tables is a process's share of the namespace: a random tag in the name of
// every table it writes (so that the next process, RemoveStale, deletes an
// earlier one's tables and not its own), its anchor table written once per
// name prefix, and a sequence numbering its paths' tables. One per process.
//
// Linux only; needs CAP_NET_ADMIN in the node's network namespace.
package kernelpath
