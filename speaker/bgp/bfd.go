package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/pier-lb/pier/speaker/bfd"
)

// BFD is a peer's BFD session (speaker/bfd): when it goes from Up to Down,
// and the peer's side was not shut on purpose (AdminDown), the announcer
// disables the gobgp neighbor at once, which closes the BGP session with a
// Cease, and enables it again when BFD is Up.
type BFD struct {
	// DesiredMinTx and RequiredMinRx default to 300ms; DetectMult to 3.
	DesiredMinTx, RequiredMinRx time.Duration
	DetectMult                  uint8
	Passive                     bool
	// Multihop selects RFC 5883; MinTTL is its least accepted TTL
	// (default 254). Single hop requires 255.
	Multihop bool
	MinTTL   uint8
}

func (b *BFD) normalize() {
	if b.DesiredMinTx == 0 {
		b.DesiredMinTx = bfd.DefaultInterval
	}
	if b.RequiredMinRx == 0 {
		b.RequiredMinRx = bfd.DefaultInterval
	}
	if b.DetectMult == 0 {
		b.DetectMult = bfd.DefaultDetectMult
	}
	if b.Multihop && b.MinTTL == 0 {
		b.MinTTL = bfd.DefaultMultihopMinTTL
	}
}

// sameBFDSession reports whether two peers' BFD settings can be served by
// one running session (intervals aside: SetIntervals changes them).
func sameBFDSession(a, b *Peer) bool {
	if a.BFD == nil || b.BFD == nil {
		return a.BFD == nil && b.BFD == nil
	}
	return a.Address == b.Address && a.SourceAddress == b.SourceAddress &&
		a.BFD.DetectMult == b.BFD.DetectMult && a.BFD.Passive == b.BFD.Passive &&
		a.BFD.Multihop == b.BFD.Multihop && a.BFD.MinTTL == b.BFD.MinTTL
}

// holdFor is what a BFD change asks of the BGP session: hold it down
// (BFD went from Up to Down, not by the peer's AdminDown, RFC 5882 §3.2),
// release it (BFD is Up), or nothing.
func holdFor(c bfd.Change) (hold, release bool) {
	switch {
	case c.To == bfd.Up:
		return false, true
	case c.From == bfd.Up && c.To == bfd.Down && c.RemoteState != bfd.AdminDown:
		return true, false
	}
	return false, false
}

// bfdPeers runs one BFD session per peer with BFD, all on one Mux.
type bfdPeers struct {
	log      *slog.Logger
	bfdLog   *slog.Logger
	mux      *bfd.Mux
	srv      func() gobgpAdmin
	sessions *sessions

	mu     sync.Mutex
	ctx    context.Context // Run's; set before any peer is added
	byName map[string]*bfdPeer
}

// gobgpAdmin is the part of gobgp the BFD sessions act on.
type gobgpAdmin interface {
	DisablePeer(context.Context, *api.DisablePeerRequest) error
	EnablePeer(context.Context, *api.EnablePeerRequest) error
	ListPeer(context.Context, *api.ListPeerRequest, func(*api.Peer)) error
}

type bfdPeer struct {
	// peer is fixed but for peer.BFD's intervals, which mu guards.
	peer   Peer
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	sess   atomic.Pointer[bfd.Session]
	// want is the hold the last change asked for; kick wakes the
	// goroutine that applies it to gobgp.
	want atomic.Bool
	kick chan struct{}
	why  atomic.Value // string: why the session is held
}

// newBFDPeers logs to log; the BFD sessions and their Mux to bfdLog (their
// own component).
func newBFDPeers(log, bfdLog *slog.Logger, ss *sessions, srv func() gobgpAdmin) *bfdPeers {
	return &bfdPeers{log: log, bfdLog: bfdLog, mux: bfd.NewMux(bfdLog), srv: srv, sessions: ss, byName: map[string]*bfdPeer{}}
}

// sync makes the BFD sessions follow peers (normalized, by name): starts,
// stops or restarts sessions and changes intervals in place. readded
// names the peers whose gobgp neighbor was just added again: one held down
// is disabled again.
func (b *bfdPeers) sync(peers map[string]*Peer, readded map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, bp := range b.byName {
		p, ok := peers[name]
		if ok && sameBFDSession(&bp.peer, p) {
			continue
		}
		bp.stop(ok && p.BFD != nil) // a restart waits: the new session takes the same socket key
		delete(b.byName, name)
	}
	for name, p := range peers {
		if p.BFD == nil {
			continue
		}
		bp, ok := b.byName[name]
		if !ok {
			b.byName[name] = b.start(*p)
			continue
		}
		if bp.setBFD(p.BFD) {
			if s := bp.sess.Load(); s != nil {
				if err := s.SetIntervals(p.BFD.DesiredMinTx, p.BFD.RequiredMinRx); err != nil {
					b.log.Warn("bfd intervals not changed", "peer", name, "err", err)
				}
			}
		}
		if readded[name] {
			b.readded(bp)
		}
	}
}

// setBFD changes the BFD settings a restarted session takes and reports
// whether they changed.
func (bp *bfdPeer) setBFD(b *BFD) bool {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if *bp.peer.BFD == *b {
		return false
	}
	bp.peer.BFD = b
	return true
}

// settings is the peer as the next session starts with it.
func (bp *bfdPeer) settings() Peer {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return bp.peer
}

// readded restores what a peer's new gobgp neighbor (and its session
// record) lost: the BFD state, and the hold if BFD is down.
func (b *bfdPeers) readded(bp *bfdPeer) {
	st := bfd.Down
	if s := bp.sess.Load(); s != nil {
		st = s.State()
	}
	why := ""
	if bp.want.Load() {
		why, _ = bp.why.Load().(string)
		select {
		case bp.kick <- struct{}{}:
		default:
		}
	}
	b.sessions.setBFD(bp.peer.Address, st.String(), why)
}

func (b *bfdPeers) start(p Peer) *bfdPeer {
	ctx, cancel := context.WithCancel(b.ctx)
	bp := &bfdPeer{peer: p, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	bp.why.Store("")
	b.sessions.setBFD(p.Address, bfd.Down.String(), "")
	go b.run(ctx, bp)
	return bp
}

// stop ends the session (it sends AdminDown) and, if wait, waits for it.
func (bp *bfdPeer) stop(wait bool) {
	bp.cancel()
	if wait {
		<-bp.done
	}
}

// run keeps the peer's session running until ctx ends, and applies the
// holds its changes ask for.
func (b *bfdPeers) run(ctx context.Context, bp *bfdPeer) {
	defer close(bp.done)
	log := b.log.With("peer", bp.peer.Name, "addr", bp.peer.Address)
	apply := make(chan struct{})
	go func() { // gobgp calls stay off the session's goroutine
		defer close(apply)
		b.applyHolds(ctx, log, bp)
	}()
	failing := ""
	for ctx.Err() == nil {
		err := b.runSession(ctx, bp)
		if err != nil && err.Error() != failing {
			log.Warn("bfd session not running; retrying every second", "err", err)
			b.sessions.setBFD(bp.peer.Address, bfd.Down.String(), "bfd: "+err.Error())
		}
		if err != nil {
			failing = err.Error()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	<-apply
	b.sessions.clearBFD(bp.peer.Address)
}

func (b *bfdPeers) runSession(ctx context.Context, bp *bfdPeer) error {
	p := bp.settings()
	local := p.SourceAddress
	if !local.IsValid() {
		var err error
		if local, err = localAddrTo(p.Address); err != nil {
			return err
		}
	}
	s, err := bfd.New(bfd.Options{
		Local: local, Peer: p.Address, Interface: p.Address.Zone(), Multihop: p.BFD.Multihop, MinTTL: p.BFD.MinTTL,
		DesiredMinTx: p.BFD.DesiredMinTx, RequiredMinRx: p.BFD.RequiredMinRx, DetectMult: p.BFD.DetectMult,
		Passive: p.BFD.Passive, Mux: b.mux, Logger: b.bfdLog,
		OnChange: func(c bfd.Change) { b.changed(bp, c) },
	})
	if err != nil {
		return err
	}
	bp.sess.Store(s)
	return s.Run(ctx)
}

// changed is called on the session's goroutine: it must not block.
func (b *bfdPeers) changed(bp *bfdPeer, c bfd.Change) {
	hold, release := holdFor(c)
	why := ""
	if hold {
		why = fmt.Sprintf("BFD down (%s): BGP session closed and held down until BFD is Up again", c.Diag)
		bp.why.Store(why)
	}
	if hold || release {
		bp.want.Store(hold)
		select {
		case bp.kick <- struct{}{}:
		default:
		}
	}
	if !hold && !release {
		why = ""
		if bp.want.Load() {
			why, _ = bp.why.Load().(string)
		}
	}
	b.sessions.setBFD(bp.peer.Address, c.To.String(), why)
}

// holdCheckEvery is how often the neighbor's admin state is compared
// with the hold BFD asks for, changes aside: gobgp drops an admin state
// request that comes while another is pending, and a new neighbor (added
// again after a settings change) starts enabled.
const holdCheckEvery = time.Second

// applyHolds makes the gobgp neighbor's admin state follow bp.want until
// ctx ends, then enables it again if it is held (unless the announcer is
// stopping: it closes every session).
func (b *bfdPeers) applyHolds(ctx context.Context, log *slog.Logger, bp *bfdPeer) {
	held := false
	var retry <-chan time.Time
	check := time.NewTicker(holdCheckEvery)
	defer check.Stop()
	for {
		select {
		case <-check.C:
		case <-ctx.Done():
			if held && b.ctx.Err() == nil {
				b.setAdmin(log, bp, false)
				log.Info("bfd stopped: bgp session enabled again")
			}
			return
		case <-bp.kick:
		case <-retry:
		}
		want := bp.want.Load()
		if want != held {
			if want {
				why, _ := bp.why.Load().(string)
				log.Warn("bfd down: closing the bgp session and holding it down until bfd is up", "why", why)
			} else {
				log.Info("bfd up: bgp session enabled again")
			}
		}
		held = want
		retry = nil
		if !b.setAdmin(log, bp, want) {
			retry = time.After(100 * time.Millisecond)
		}
	}
}

// setAdmin disables (down) or enables the gobgp neighbor unless it is so
// already, and reports whether it was. gobgp takes one admin state
// request at a time and drops one that comes while another is pending
// (a quick Down-Up flap): the caller checks again later.
func (b *bfdPeers) setAdmin(log *slog.Logger, bp *bfdPeer, down bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := bp.peer.Address.String()
	srv := b.srv()
	found, is := false, false
	err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
		found = true
		is = p.GetState().GetAdminState() == api.PeerState_DOWN
	})
	if err != nil || !found {
		return true // the peer is gone: nothing to hold
	}
	if is == down {
		return true
	}
	if down {
		err = srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr, Communication: "BFD down"})
	} else {
		err = srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: addr})
	}
	if err != nil {
		log.Warn("bgp admin state not changed", "down", down, "err", err)
	}
	return false
}

// localAddrTo is the address the kernel sends from towards peer (a UDP
// connect sends nothing).
func localAddrTo(peer netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, bfd.SingleHopPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("local address towards %s: %w", peer, err)
	}
	defer c.Close()
	a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	if peer.Zone() != "" && a.IsLinkLocalUnicast() {
		a = a.WithZone(peer.Zone())
	}
	return a, nil
}
