package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/pier-lb/pier/speaker/bfd"
)

// Announcer keeps an embedded gobgp server's peers and paths equal to the
// desired sets it is given.
type Announcer struct {
	opts     Options
	log      *slog.Logger
	glog     *gobgpLogger
	srv      *server.BgpServer
	sessions *sessions
	bfd      *bfdPeers

	running atomic.Bool
	ready   chan struct{} // closed once gobgp runs
	done    chan struct{} // closed when Run returns

	mu      sync.Mutex // serializes SetPeers, SetPaths and shutdown
	stopped bool
	peers   map[string]*Peer
	paths   map[netip.Prefix]*Path
	sets    map[string]map[netip.Prefix]bool // per peer: its prefix sets' contents
}

// New validates opts and prepares an announcer; it starts nothing.
func New(opts Options) (*Announcer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "bgp")
	a := &Announcer{
		opts:  opts,
		log:   log,
		ready: make(chan struct{}),
		done:  make(chan struct{}),
		peers: map[string]*Peer{},
		paths: map[netip.Prefix]*Path{},
		sets:  map[string]map[netip.Prefix]bool{},
	}
	a.sessions = newSessions(log, opts.Metrics, opts.Clock)
	a.bfd = newBFDPeers(log, opts.Logger, a.sessions, func() gobgpAdmin { return a.srv })
	a.glog = newGobgpLogger(log, a.sessions.dialError, a.sessions.peerDown)
	a.glog.onPrefixLimit, a.glog.onPeerUp = a.sessions.prefixLimit, a.sessions.peerUp
	return a, nil
}

// Run starts gobgp (no gRPC listener) and keeps it until ctx ends; then it
// withdraws every path, closes every session with a Cease notification
// (after the withdrawals, on the same queue) and stops gobgp. It returns
// nil after a clean stop.
func (a *Announcer) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("bgp announcer: Run called twice")
	}
	defer close(a.done)
	a.srv = server.NewBgpServer(server.LoggerOption(a.glog))
	go a.srv.Serve() // gobgp offers no way to end this loop; it idles after StopBgp
	global := &api.Global{Asn: a.opts.ASN, RouterId: a.opts.RouterID.String(), ListenPort: a.opts.ListenPort}
	if err := a.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fmt.Errorf("start gobgp: %w", err)
	}
	if err := rejectByDefault(ctx, a.srv); err != nil {
		a.srv.Stop()
		return err
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	err := a.srv.WatchEvent(watchCtx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, a.sessions.event)
	if err != nil {
		a.srv.Stop()
		return fmt.Errorf("watch gobgp peers: %w", err)
	}
	a.bfd.mu.Lock()
	a.bfd.ctx = ctx
	a.bfd.mu.Unlock()
	close(a.ready)
	a.log.Info("bgp started", "router_id", a.opts.RouterID, "listen_port", a.opts.ListenPort)
	var wg sync.WaitGroup
	wg.Go(func() { a.refuseLoop(ctx) })
	a.sessions.warnLoop(ctx, a.opts.WarnAfter)
	wg.Wait()
	a.shutdown()
	return nil
}

// BFDMux is the Mux of the peers' BFD sessions, for its metrics
// (bfd.NewCollector).
func (a *Announcer) BFDMux() *bfd.Mux { return a.bfd.mux }

// Changes is closed at the next change of any session's state (or of its
// last error); read it again after each change.
func (a *Announcer) Changes() <-chan struct{} { return a.sessions.Changes() }

// wait blocks until gobgp runs.
func (a *Announcer) wait(ctx context.Context) error {
	select {
	case <-a.ready:
		return nil
	case <-a.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lock waits for gobgp and takes the announcer's lock; it fails once the
// announcer has stopped.
func (a *Announcer) lock(ctx context.Context) error {
	if err := a.wait(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return ErrStopped
	}
	return nil
}

func (a *Announcer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.StopTimeout)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	n := len(a.paths)
	if err := a.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL}); err != nil {
		a.log.Error("withdraw all paths", "err", err)
	}
	for range n {
		a.opts.Metrics.update("withdraw")
	}
	a.opts.Metrics.setAnnounced(0)
	// The Cease goes on each peer's queue behind the withdrawals.
	if err := a.srv.ShutdownPeer(ctx, &api.ShutdownPeerRequest{Address: "", Communication: "pier speaker stopping"}); err != nil {
		a.log.Warn("send shutdown notifications", "err", err)
	}
	if err := a.sessions.waitAllDown(ctx); err != nil {
		a.log.Warn("sessions still up at stop; closing them", "err", err)
	}
	a.srv.Stop()
	a.sessions.clear()
	a.log.Info("bgp stopped", "withdrawn", n)
}

// refuseLoop closes the sessions the router opened with an ASN the peer
// does not accept; gobgp dials again after the peer's connect time.
func (a *Announcer) refuseLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-a.sessions.refused:
			req := &api.ResetPeerRequest{Address: r.addr.String(), Communication: r.reason}
			if err := a.srv.ResetPeer(ctx, req); err != nil {
				a.log.Warn("cannot close a refused session", "addr", r.addr, "err", err)
			}
		}
	}
}
