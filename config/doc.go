// Package config turns Pier's custom resources (IPAddressPool,
// L2Advertisement, BGPPeer, BGPAdvertisement) into one validated,
// resolved [Config]. [Parse] is pure (no API calls, no clock, no I/O),
// deterministic (it sorts its input by namespace and name) and never
// panics, whatever the objects hold.
//
// # One parser, three callers
//
// The validating webhook, the controller and the speaker all call Parse on
// the same objects, so they agree on what is valid:
//
//   - The webhook parses the objects already stored plus the one being
//     admitted (or minus the one being deleted) and refuses the request
//     when [ForObject] reports a problem of that object, including a
//     cross-object problem it takes part in (an overlap with another pool,
//     an advertisement that names it and would be left dangling). It does
//     not refuse an object for faults other objects already had.
//   - The controller and the speaker parse what their informers hold. The
//     webhook may have been down, or objects may predate it (a pool deleted
//     while an advertisement names it is admitted: deletes are not
//     reviewed), so they meet invalid objects. Parse hands them the valid
//     part with the errors, so that one bad object need not stop the
//     others (the controller and speaker call sites still keep the last
//     good Config when err is non-nil: switching them over is pending).
//
// Parse returns the Config of everything valid (never nil) and, when
// anything is wrong, an error joining one [*Error] per problem. An object
// with a fault is left out whole; only a reference to a pool or peer that
// does not exist is dropped alone, keeping the rest of its advertisement
// (an L2Advertisement of pools a and b keeps announcing a when b is
// deleted; one whose named pools are all gone announces nothing, never
// everything). Of two overlapping pools the later in namespace/name order
// is left out. Each error names the object (Kind namespace/name) and the
// field path at fault:
//
//	IPAddressPool pier-system/pool-a: spec.addresses[1]: "198.51.100.300/24" is not a CIDR or range
//
// [Errors] extracts them; errors.Is(err, [ErrInvalid]) holds for each.
//
// # Rules
//
// IPAddressPool: a unique, non-empty name; at least one address entry,
// each a CIDR ("198.51.100.0/24", "2001:db8::/64") or an inclusive range
// ("198.51.100.10-198.51.100.20", both ends of one family, first <= last).
// A CIDR with host bits set ("198.51.100.1/24") is refused, not masked: it
// is more often a typo or a single address than the whole prefix, and the
// message suggests the masked form. A bare address is refused with a hint
// to write it as /32 or /128. No entry may overlap another entry of the
// same pool or of any other pool (adjacent is fine); IPv4-mapped IPv6
// (::ffff:0:0/96) and zones are refused. An entry holding any address no
// Service can use is refused whole, not carved around: unspecified and
// this-network 0.0.0.0/8, loopback 127.0.0.0/8 and ::1, link-local
// 169.254.0.0/16 and fe80::/10, multicast 224.0.0.0/4 and ff00::/8, the
// broadcast address 255.255.255.255 and the unspecified ::, so
// "0.0.0.0/0" and "224.0.0.0/4" are refused alike. serviceAllocation: priority >= 0,
// namespaces are namespace names, selectors valid. autoAssign defaults to
// true. Each pool is finally checked by allocator.New, and the pools of a
// Config are always accepted by allocator.New together.
//
// L2Advertisement: named pools exist; selectors valid; interface names
// follow the kernel's rules (1 to 15 bytes, not "." or "..", no '/', ':'
// or whitespace).
//
// BGPPeer: a unique name; ASNs 1 to 4294967295 except 23456 (AS_TRANS);
// the peer address a unicast IP without zone; the source address, if set,
// one of the same family; the router ID, if set, a non-zero IPv4 address;
// port 0 means the default 179. Timers are whole seconds: holdTime 0 or
// 3s to 65535s (default 90s); keepaliveTime defaults to holdTime/3 and may
// not exceed holdTime, nor be 0 when holdTime is not; connectTime at least
// 1s (default 10s); maxPrefixes not negative, 0 meaning the announcer's
// default (10000 per family). passwordSecret, when present, names a Secret (key
// default "password") in Objects.PasswordNamespace (default
// pier-bgp-passwords), the only namespace where the speakers may read
// Secrets: naming another is an error; the password is never read here.
// Families are
// IPv4Unicast or IPv6Unicast, each at most once, default the peer
// address's family; the other family is allowed too (IPv6 routes over an
// IPv4 session, RFC 8950 extended next hop, which the router must
// support). Two peers with the same address, port, myASN and node
// selectors would open the same session: the second is refused. bfd,
// when present: receiveInterval and transmitInterval 10 to 60000 ms
// (default 300), detectMultiplier 2 to 255 (default 3), multihop defaulting
// to ebgpMultiHop, minimumTTL 1 to 255 and only with multihop (default 254).
//
// BGPAdvertisement: named pools and peers exist; aggregation lengths 0 to
// 32 and 0 to 128 (default 32 and 128), and not shorter than any entry of
// that family in the selected pools: a CIDR's prefix length, or for a range
// the length of the smallest prefix covering it; communities parse (see
// [ParseCommunity]); localPref is any uint32.
//
// Resolved references are names that exist: an advertisement that names
// no pool and has no pool selector gets every pool, one that names no peer
// gets every peer. Empty [Selectors] match everything.
package config
