// Package vip puts the service addresses a node owns on a local interface
// (by default `lo`), so that a process on the node (the relay, a demo
// server) accepts traffic for them, while the kernel does not answer ARP for
// them: only the elected speaker does (package l2).
//
// Addresses go on the link as host routes (/32 for IPv4, /128 for IPv6). A
// wider prefix on `lo` would make the whole subnet local to the node. IPv6
// addresses carry IFA_F_NODAD so they are usable at once.
//
// # Which addresses are ours
//
// VIPs never removes an address it did not add: 127.0.0.1, ::1 and anything
// an administrator put on the link stay. It remembers what it added in
// memory and, when Options.StateFile is set, in a JSON list of addresses
// written atomically (temp file, fsync, rename) before and after every
// change. A restarted speaker reads the list and claims an entry again only
// if it is still on the link as a host prefix and, for IPv4, still carries
// the label "<link>:pier" ("lo:pier", shown by `ip addr`). The label alone is
// not trusted (an administrator may copy it) and IPv6 addresses have no
// label, so the state file is the record; the label lets an operator see at
// a glance which addresses Pier manages. An address that is wanted but
// already on the link without being ours is left alone and never recorded,
// so removing it later stays the administrator's business.
//
// Without a StateFile, addresses added by a previous process are not known
// and are never removed.
//
// # ARP
//
// By default Linux answers ARP on every interface for every local address
// (the weak host model), so a VIP on `lo` would make every node answer for
// it and fight the elected speaker. Prepare sets arp_ignore=1 (answer only
// for addresses configured on the interface the request arrived on) and
// arp_announce=2 (use the outgoing interface's own address as the sender of
// ARP requests, never a VIP, which would otherwise teach neighbours that the
// VIP lives at this node). IPv6 needs no such setting: Linux answers
// neighbour solicitations only for addresses on the receiving interface.
package vip
