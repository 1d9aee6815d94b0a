// Package migrate converts MetalLB configuration objects to Pier's.
//
// [Convert] is pure: it takes the MetalLB objects as unstructured objects
// (from YAML files or a cluster; [Decode] reads multi-document YAML or JSON)
// and returns the equivalent Pier objects plus one [Finding] per field it
// could not carry over or that needs the user's attention. It reads:
//
//   - metallb.io/v1beta1 IPAddressPool, L2Advertisement, BGPAdvertisement,
//     Community (aliases, resolved into the advertisements' communities) and
//     BFDProfile (carried into the bfd block of the BGPPeers naming it);
//   - metallb.io/v1beta2 and v1beta1 BGPPeer;
//   - the legacy ConfigMap (data key "config", MetalLB before v0.13);
//   - Services carrying MetalLB's annotations (reported with Pier's
//     equivalent; Services are never rewritten).
//
// Every MetalLB field maps to a Pier field of the same meaning except:
//
//   - serviceAllocation.priority: MetalLB tries pools without a priority
//     (0) last and pools with a serviceAllocation before pools without one;
//     Pier tries lower numbers first, 0 first of all. When any pool has a
//     serviceAllocation, pools are renumbered to keep MetalLB's order (each
//     change reported as a note).
//   - BGPPeer password: Pier reads passwords only from Secrets, and only in
//     the namespace of BGP passwords (Options.PasswordNamespace), so a plain
//     password becomes a Secret there (a note, since the output then holds
//     the password); passwordSecret is carried over by name and key
//     "password", and the Secret must be copied to that namespace.
//   - dualStackAddressFamily: addressFamilies IPv4Unicast and IPv6Unicast.
//   - bfdProfile: the named BFDProfile becomes the peer's bfd block (echo
//     mode dropped: Pier's BFD is asynchronous only; minimumTtl kept for
//     multihop peers only, as MetalLB applies it).
//   - dynamicASN is carried over (dropped next to a peerASN).
//   - vrf and interface (unnumbered BGP) have no equivalent; a peer
//     without a peerAddress is not converted (Pier's link-local peers
//     need the router's address: the report says so),
//     and an advertisement left naming only such peers is not converted
//     either (an empty peer list would mean every peer).
//
// Objects are written into Pier's namespace; only objects in MetalLB's
// namespace (or with none) are read, as MetalLB reads only its own.
package migrate
