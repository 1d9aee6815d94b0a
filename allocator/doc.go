// Package allocator hands out load-balancer addresses from pools to
// Services. It is pure Go over net/netip: it knows nothing of Kubernetes or
// of the network, so the controller, the webhook and tests can all call it.
//
// # Model
//
// A [Pool] is a named set of IPv4 and/or IPv6 addresses, given as prefixes
// and ranges, with an auto-assign switch, an avoid-buggy-IPs switch (skip
// x.y.z.0 and x.y.z.255 in IPv4), a priority and eligibility rules
// (namespace names, namespace label selectors, Service label selectors; an
// empty list means "all"). Pools never overlap.
//
// [Allocator.Assign] gives one Service one address per IP family it asks for
// ([SingleStack], [PreferDualStack], [RequireDualStack]). A Service may ask
// for specific addresses, for a pool by name, or for neither; then every
// family is served by the best eligible auto-assign pool that still has a
// free address. Pools are ranked by Priority, lower number first (as in
// MetalLB: priority 1 beats priority 10; the zero value is just the number
// 0), then by name. Within a pool the lowest free address is chosen, so the
// same state and request always give the same answer. A Service that already
// holds addresses satisfying its request keeps them: Assign is idempotent.
// Assign is atomic: on error nothing changes and a Service keeps what it held.
//
// Services with the same non-empty sharing key may hold the same address
// when no two of them use the same port and protocol. A Service with a
// sharing key that asks for no particular address first tries to join an
// address already used with its key.
//
// Addresses are sticky. Once held, an address stays with its Service until
// [Allocator.Release], until the request itself asks for something the
// address does not satisfy (another address, another pool, a sharing key or
// ports that clash with its co-holders, a family no longer wanted), or until
// a [Allocator.Restore] conflict with an older Service. Editing or deleting
// pools ([Allocator.SetPools]) never moves an address: addresses left
// outside every pool are reported as orphans for the caller to flag.
// Pool eligibility and auto-assign are checked only when an address is
// handed out, not for addresses already held.
//
// At start-up the caller feeds the assignments found in Service status to
// [Allocator.Restore]. It sorts the batch by creation time, then namespace
// and name, and applies it oldest first, so that when two Services claim one
// address without being allowed to share, the newer one loses regardless of
// the order of the batch.
//
// # Complexity
//
// Let n be the number of held addresses, P the number of pools and R the
// number of prefixes and ranges over all pools. Each pool keeps, per family,
// its sorted, merged ranges, a cursor below which every address is in use or
// freed, and a min-heap of the freed addresses below the cursor. The next
// address is the heap's minimum or else the cursor; the cursor only moves
// forward and skips held addresses and avoided .0/.255 addresses in O(1)
// each, so allocation costs O(P + log n) amortized and never walks the pool
// or the assignments. Held addresses live in a hash map, so requested
// addresses are checked in O(1) plus O(log R) to find their pool.
// Release is O(log n). Restore of a batch of m claims is O(m log m).
// SetPools is O(n + R log R): it recounts usage and orphans.
// Stats are exact big integers, so an IPv6 /64 (or larger) pool is counted
// without overflow.
//
// # Concurrency
//
// An Allocator is safe for concurrent use: every method takes one mutex.
// The controller reconciles one Service at a time, so the mutex is never
// contended in practice.
package allocator
