package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/pier-lb/pier/speaker/bgp"
	"github.com/pier-lb/pier/speaker/l2"
)

// FakeMembers is a Membership in memory, for tests of the speaker's loop
// without sockets. Its methods are safe for concurrent use.
type FakeMembers struct {
	mu      sync.Mutex
	live    []string
	meta    map[string][]byte
	settled bool
	peers   []string
	changes chan struct{}
}

// NewFakeMembers returns a view holding the named members, not settled.
func NewFakeMembers(live ...string) *FakeMembers {
	return &FakeMembers{live: slices.Clone(live), meta: map[string][]byte{}, changes: make(chan struct{}, 1)}
}

// SetLive replaces the live members and notifies.
func (f *FakeMembers) SetLive(live ...string) {
	f.mu.Lock()
	f.live = slices.Clone(live)
	f.mu.Unlock()
	f.notify()
}

// Settle marks the view settled and notifies.
func (f *FakeMembers) Settle() {
	f.mu.Lock()
	f.settled = true
	f.mu.Unlock()
	f.notify()
}

func (f *FakeMembers) notify() {
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// Live implements Membership.
func (f *FakeMembers) Live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.live))
}

// Settled implements Membership.
func (f *FakeMembers) Settled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settled
}

// MetaOf implements Membership.
func (f *FakeMembers) MetaOf(name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.meta[name]
}

// SetMetaOf sets another member's metadata (EncodeIfaces).
func (f *FakeMembers) SetMetaOf(name string, meta []byte) {
	f.mu.Lock()
	f.meta[name] = meta
	f.mu.Unlock()
	f.notify()
}

// SetMeta implements Membership; it does not notify (a node is not told
// of its own metadata).
func (f *FakeMembers) SetMeta(meta []byte) error { return nil }

// SetPeers implements Membership.
func (f *FakeMembers) SetPeers(peers []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = slices.Clone(peers)
	return nil
}

// Changes implements Membership.
func (f *FakeMembers) Changes() <-chan struct{} { return f.changes }

// FakeL2 is an L2Announcer in memory: it records the sets it is given and
// counts the re-announcements. Like l2.Announcer, it serves every address
// it can and returns an error naming those it cannot (FailOn).
type FakeL2 struct {
	mu          sync.Mutex
	sets        [][]l2.Announcement
	served      []l2.Announcement
	fail        map[netip.Addr]error
	failed      int
	reannounced int
}

// FailOn makes Set fail to serve addr with err from now on; a nil err
// ends the failure.
func (f *FakeL2) FailOn(addr netip.Addr, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[netip.Addr]error{}
	}
	if err == nil {
		delete(f.fail, addr)
		return
	}
	f.fail[addr] = err
}

// Set implements L2Announcer.
func (f *FakeL2) Set(_ context.Context, desired []l2.Announcement) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, slices.Clone(desired))
	f.served = nil
	var errs []error
	for _, a := range desired {
		if err := f.fail[a.Addr]; err != nil {
			errs = append(errs, fmt.Errorf("announce %s on %s: %w", a.Addr, a.Iface, err))
			continue
		}
		f.served = append(f.served, a)
	}
	if len(errs) > 0 {
		f.failed++
	}
	return errors.Join(errs...)
}

// Served returns what is served after the last Set: the set given less
// the addresses that failed.
func (f *FakeL2) Served() []l2.Announcement {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.served)
}

// Failed returns how many calls of Set returned an error.
func (f *FakeL2) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// Reannounce implements L2Announcer.
func (f *FakeL2) Reannounce() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reannounced++
}

// Sets returns every set given so far, in order.
func (f *FakeL2) Sets() [][]l2.Announcement {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets)
}

// Reannounced returns how many times Reannounce was called.
func (f *FakeL2) Reannounced() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reannounced
}

// FakeBGP is a BGPAnnouncer in memory: it records the session and path
// sets it is given and reports the sessions set with SetStatus.
type FakeBGP struct {
	mu     sync.Mutex
	peers  []bgp.Peer
	paths  [][]bgp.Path
	status []bgp.PeerStatus
}

// SetPeers implements BGPAnnouncer.
func (f *FakeBGP) SetPeers(_ context.Context, peers []bgp.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = slices.Clone(peers)
	return nil
}

// SetPaths implements BGPAnnouncer.
func (f *FakeBGP) SetPaths(_ context.Context, paths []bgp.Path) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, slices.Clone(paths))
	return nil
}

// Status implements BGPAnnouncer.
func (f *FakeBGP) Status() []bgp.PeerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.status)
}

// SetStatus sets what Status reports.
func (f *FakeBGP) SetStatus(status []bgp.PeerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = slices.Clone(status)
}

// Changes implements BGPAnnouncer; sessions of a fake never change.
func (f *FakeBGP) Changes() <-chan struct{} { return nil }

// Peers returns the sessions set last.
func (f *FakeBGP) Peers() []bgp.Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

// Paths returns the paths set last (nil before any).
func (f *FakeBGP) Paths() []bgp.Path {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.paths) == 0 {
		return nil
	}
	return slices.Clone(f.paths[len(f.paths)-1])
}

// FakeVIP is a VIPSetter in memory: it records the address sets it is
// given.
type FakeVIP struct {
	mu   sync.Mutex
	sets [][]netip.Addr
}

// Set implements VIPSetter.
func (f *FakeVIP) Set(_ context.Context, addrs []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, slices.Clone(addrs))
	return nil
}

// Addrs returns the set given last (nil before any).
func (f *FakeVIP) Addrs() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sets) == 0 {
		return nil
	}
	return slices.Clone(f.sets[len(f.sets)-1])
}
