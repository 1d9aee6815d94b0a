// Package l2 announces a node's LoadBalancer addresses on a shared L2
// segment: it answers ARP requests (IPv4) and Neighbor Solicitations (IPv6)
// for the addresses it is given, on the interface each is given for, and
// sends gratuitous ARPs / unsolicited Neighbor Advertisements when it takes
// an address over, so that neighbours move their cache entries at once.
//
// The speaker hands the Announcer its whole desired set with Set; Set is
// idempotent, so the speaker can call it after every recomputation.
//
// Each interface and family with something to announce gets a responder: a
// packet socket with a BPF filter (ARP frames, or ICMPv6 Neighbor
// Solicitations) that reads requests and writes whole Ethernet frames, so
// answers need neither an address on the interface nor a neighbour entry
// for the requester. Unicast solicitations (neighbour unreachability
// detection) are answered too; the kernel would drop them, since the
// address is not configured on the host. For IPv6 an ICMPv6 socket also
// holds the solicited-node multicast memberships.
//
// The kernel answers ARP and NDP itself for addresses configured on the
// host. Pier's addresses normally are not, so there is no conflict. Where
// a node must accept VIP traffic locally by putting the address on lo, the
// node must set net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 so that
// only the elected speaker answers (the vip package does that).
//
// Reopening: a responder whose socket fails (the interface went down or
// away) keeps its addresses, retries opening with back-off (100 ms doubling
// to 10 s) for as long as they are wanted, and announces them again when it
// is back.
package l2
