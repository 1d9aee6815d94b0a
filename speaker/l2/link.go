package l2

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
)

// Bounds of the back-off between attempts to reopen a failed responder.
const (
	reopenMin = 100 * time.Millisecond
	reopenMax = 10 * time.Second
)

// link is the responder for one interface and family: it reads requests,
// answers those for owned addresses, and sends the gratuitous bursts.
type link struct {
	key    linkKey
	log    *slog.Logger
	m      *familyMetrics
	opts   *Options
	wg     *sync.WaitGroup // the announcer's
	yield  *atomic.Bool    // the announcer's yielding
	ctx    context.Context
	cancel context.CancelFunc

	set atomic.Pointer[addrSet] // owned addresses, read per request

	mu     sync.Mutex
	sock   *sock                             // nil while reopening
	bursts map[netip.Addr]context.CancelFunc // per owned address
	groups map[netip.Addr]int                // solicited-node groups, refcounted
}

// openLink opens k's sockets through the Namespace hook; the link serves
// once its serve goroutine runs.
func (a *Announcer) openLink(k linkKey) (*link, error) {
	l := &link{
		key:    k,
		log:    a.opts.Logger.With("component", "l2", "iface", k.iface, "family", k.fam.String()),
		m:      a.metrics[k.fam],
		opts:   &a.opts,
		wg:     &a.wg,
		yield:  &a.yielding,
		bursts: make(map[netip.Addr]context.CancelFunc),
		groups: make(map[netip.Addr]int),
	}
	s, err := l.open()
	if err != nil {
		return nil, err
	}
	l.ctx, l.cancel = context.WithCancel(a.ctx)
	l.sock = s
	l.set.Store(&addrSet{})
	l.log.Info("responder opened", "mac", s.mac.String())
	return l, nil
}

func (l *link) open() (*sock, error) {
	var s *sock
	err := l.opts.Namespace(func() (err error) {
		s, err = openSock(l.key)
		return err
	})
	return s, err
}

func (l *link) owned() addrSet { return *l.set.Load() }

func (l *link) current() *sock {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sock
}

// apply removes and adds addresses. Removed ones are no longer answered
// when it returns; added ones are answered and announced.
func (l *link) apply(c change) []error {
	if c.empty() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next := maps.Clone(l.owned())
	for _, addr := range c.remove {
		delete(next, addr)
		l.stopBurst(addr)
		l.leave(addr)
	}
	var errs []error
	var added []netip.Addr
	for _, addr := range c.add {
		if err := l.join(addr); err != nil {
			errs = append(errs, fmt.Errorf("announce %s on %s: %w", addr, l.key.iface, err))
			continue
		}
		next[addr] = struct{}{}
		added = append(added, addr)
	}
	l.set.Store(&next)
	for _, addr := range added {
		l.log.Info("announcing", "addr", addr)
		l.startBurst(addr)
	}
	for _, addr := range c.remove {
		l.log.Info("stopped announcing", "addr", addr)
	}
	return errs
}

// join takes a reference on addr's solicited-node group (IPv6 only).
func (l *link) join(addr netip.Addr) error {
	if l.key.fam != ipv6 {
		return nil
	}
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	if l.groups[g] == 0 && l.sock != nil {
		if err := l.sock.join(g); err != nil {
			return fmt.Errorf("join %s: %w", g, err)
		}
	}
	l.groups[g]++
	return nil
}

func (l *link) leave(addr netip.Addr) {
	if l.key.fam != ipv6 {
		return
	}
	g, _ := ndp.SolicitedNodeMulticast(addr)
	if l.groups[g]--; l.groups[g] > 0 {
		return
	}
	delete(l.groups, g)
	if l.sock != nil {
		if err := l.sock.leave(g); err != nil {
			l.log.Debug("leave group failed", "group", g, "err", err)
		}
	}
}

// startBurst sends addr's gratuitous burst in the background; l.mu held.
func (l *link) startBurst(addr netip.Addr) {
	if l.opts.GratuitousCount == 0 {
		return
	}
	ctx, cancel := context.WithCancel(l.ctx)
	l.bursts[addr] = cancel
	l.wg.Go(func() { l.burst(ctx, addr) })
}

func (l *link) stopBurst(addr netip.Addr) {
	if cancel, ok := l.bursts[addr]; ok {
		cancel()
		delete(l.bursts, addr)
	}
}

func (l *link) burst(ctx context.Context, addr netip.Addr) {
	wait := l.opts.GratuitousInterval
	for i := range l.opts.GratuitousCount {
		if i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.opts.Clock.After(wait):
			}
			wait *= 2
		}
		if ctx.Err() != nil {
			return
		}
		l.announce(addr)
	}
}

// announce sends one gratuitous ARP or unsolicited NA for addr.
func (l *link) announce(addr netip.Addr) {
	s := l.current()
	if s == nil {
		return
	}
	frame, dst, err := l.gratuitous(s, addr)
	if err == nil {
		err = s.write(frame, dst)
	}
	if err != nil {
		l.log.Warn("announce failed", "addr", addr, "err", err)
		return
	}
	l.m.gratuitous.Inc()
}

func (l *link) gratuitous(s *sock, addr netip.Addr) ([]byte, net.HardwareAddr, error) {
	if l.key.fam == ipv6 {
		frame, err := unsolicitedNA(s.mac, addr)
		return frame, multicastMAC(allNodes), err
	}
	frame, err := gratuitousARP(s.mac, addr)
	return frame, broadcastMAC, err
}

func (l *link) announceAll() {
	for addr := range l.owned() {
		l.announce(addr)
	}
}

// close stops answering at once and releases the sockets; serve and the
// bursts return.
func (l *link) close() {
	l.cancel()
	l.set.Store(&addrSet{})
	l.mu.Lock()
	s := l.sock
	l.sock = nil
	l.mu.Unlock()
	if s != nil {
		s.close()
	}
	l.log.Info("responder closed")
}

// serve reads and answers requests until the link is closed, reopening
// the sockets after an error.
func (l *link) serve() {
	for {
		s := l.current()
		if s == nil {
			if !l.reopen() {
				return
			}
			continue
		}
		err := l.read(s)
		if l.ctx.Err() != nil {
			return
		}
		l.log.Warn("responder failed; reopening", "err", err)
		l.mu.Lock()
		if l.sock == s {
			l.sock = nil
		}
		l.mu.Unlock()
		s.close()
	}
}

func (l *link) read(s *sock) error {
	buf := make([]byte, max(s.mtu+ethHeaderLen, 1514))
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return err
		}
		l.handle(s, buf[:n])
	}
}

// handle answers one frame or counts why not.
func (l *link) handle(s *sock, frame []byte) {
	l.m.received.Inc()
	if addr, isNA, ok := announced(l.key.fam, frame, s.mac); ok {
		if l.yield.Load() {
			l.giveUp(addr)
		}
		if isNA {
			return // an advertisement needs no answer
		}
	}
	var reply []byte
	var dst net.HardwareAddr
	var reason string
	if l.key.fam == ipv6 {
		reply, dst, reason = answerNS(frame, s.mac, l.owned())
	} else {
		reply, dst, reason = answerARP(frame, s.mac, l.owned())
	}
	if reason == "" {
		if err := s.write(reply, dst); err != nil {
			l.log.Debug("reply failed", "err", err)
			reason = reasonSendFailed
		}
	}
	if reason != "" {
		l.m.dropped[reason].Inc()
		return
	}
	l.m.responses.Inc()
}

// announced returns the address another host announces in frame (a
// gratuitous ARP or a Neighbor Advertisement from a MAC other than mac),
// and whether frame is an advertisement, which the responder never
// answers.
func announced(fam family, frame []byte, mac net.HardwareAddr) (addr netip.Addr, isNA, ok bool) {
	if fam == ipv6 {
		target, from, isNA := parseNA(frame)
		return target, isNA, isNA && !bytes.Equal(from, mac)
	}
	addr, ok = announcedARP(frame, mac)
	return addr, false, ok
}

// giveUp stops answering for addr, which another host announced while
// this one yields.
func (l *link) giveUp(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.owned()[addr]; !ok {
		return
	}
	next := maps.Clone(l.owned())
	delete(next, addr)
	l.stopBurst(addr)
	l.leave(addr)
	l.set.Store(&next)
	l.m.yielded.Inc()
	l.log.Info("stopped announcing: another host announced it", "addr", addr)
}

// reopen retries opening the sockets with back-off until it succeeds or
// the link is closed; then it rejoins the groups and announces again.
func (l *link) reopen() bool {
	delay := reopenMin
	for {
		select {
		case <-l.ctx.Done():
			return false
		case <-l.opts.Clock.After(delay):
		}
		s, err := l.open()
		if err == nil {
			return l.install(s)
		}
		l.log.Warn("reopen failed", "err", err, "retry_in", delay)
		delay = min(2*delay, reopenMax)
	}
}

func (l *link) install(s *sock) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		s.close()
		return false
	}
	l.sock = s
	for g := range l.groups {
		if err := s.join(g); err != nil {
			l.log.Warn("rejoin group failed", "group", g, "err", err)
		}
	}
	for addr := range l.owned() {
		l.stopBurst(addr)
		l.startBurst(addr)
	}
	l.log.Info("responder reopened", "mac", s.mac.String())
	return true
}
