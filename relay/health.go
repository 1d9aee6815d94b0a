package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// markDown takes a backend out of every table at once (passive health: a
// failed connect or an ICMP port unreachable).
func (r *Relay) markDown(b *backend, reason string, err error) {
	if !b.up.CompareAndSwap(true, false) {
		return
	}
	b.downedAt.Store(r.clock.Now().UnixNano())
	r.log.Warn("backend down", "backend", b.Name, "addr", b.Addr, "reason", reason, "err", err)
	r.mu.Lock()
	r.rebuildLocked()
	r.mu.Unlock()
	r.forgetKernel(b)
}

func (r *Relay) markUp(b *backend) {
	if !b.up.CompareAndSwap(false, true) {
		return
	}
	b.misses.Store(0)
	r.log.Info("backend up", "backend", b.Name, "addr", b.Addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rebuildLocked()
}

// healthLoop checks the backends every HealthInterval until ctx ends.
func (r *Relay) healthLoop(ctx context.Context) {
	t := r.clock.NewTicker(r.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			r.checkAll(ctx)
		}
	}
}

// checkAll probes every backend at once (active health): an up backend that
// fails its check is marked down, a down one that passes is marked up. Up
// backends without a TCP port to check are left to the passive checks.
func (r *Relay) checkAll(ctx context.Context) {
	backends := r.plane.Load().backends
	bs := make([]*backend, 0, len(backends))
	for _, b := range backends {
		bs = append(bs, b)
	}
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() {
			up := b.up.Load()
			if !up {
				if r.probeDown(ctx, b) {
					r.markUp(b)
				}
				return
			}
			target, ok := r.healthTarget(b)
			if !ok {
				return
			}
			r.checkUp(ctx, b, target)
		})
	}
	wg.Wait()
}

// checkUp probes an up backend. A refused connect marks it down at once; a
// check that gets no answer must fail twice in a row, so one slow probe (a
// loaded node) does not move every flow of a healthy server, while a server
// gone silent is out within about three health intervals.
func (r *Relay) checkUp(ctx context.Context, b *backend, target netip.AddrPort) {
	err := r.connect(ctx, b, target)
	switch {
	case err == nil:
		b.misses.Store(0)
	case ctx.Err() != nil:
	case localLimit(err):
		// The relay is out of descriptors or ports: not the backend's fault.
	case errors.Is(err, syscall.ECONNREFUSED):
		r.markDown(b, "active check", err)
	case b.misses.Add(1) >= 2:
		r.markDown(b, "active check", err)
	}
}

// probeDown reports whether a down backend looks alive again: a TCP connect
// to its health port, or, with no TCP port to try, the passing of 10 health
// intervals.
func (r *Relay) probeDown(ctx context.Context, b *backend) bool {
	target, ok := r.healthTarget(b)
	if !ok {
		hold := 10 * r.opts.HealthInterval
		return r.clock.Since(time.Unix(0, b.downedAt.Load())) >= hold
	}
	return r.connect(ctx, b, target) == nil
}

// connect is one active check: a TCP connect within a health interval (at
// most ConnectTimeout), so that a server gone silent (a host down, no RST
// and no ICMP) is noticed within an interval of each check. A check on a
// backend's PROXY protocol port first sends a LOCAL header.
func (r *Relay) connect(ctx context.Context, b *backend, target netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, min(r.opts.ConnectTimeout, r.opts.HealthInterval))
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", target.String())
	if err != nil {
		return err
	}
	if b.ProxyProtocol && b.HealthPort == 0 {
		// Best effort: the connect answered, which is the check.
		_ = c.SetWriteDeadline(time.Now().Add(r.opts.HealthInterval))
		_, _ = c.Write(localHeader)
	}
	return c.Close()
}

func (r *Relay) healthTarget(b *backend) (netip.AddrPort, bool) {
	if b.HealthPort != 0 {
		return netip.AddrPortFrom(b.Addr, b.HealthPort), true
	}
	for _, l := range r.opts.Listeners {
		if l.Protocol == TCP && b.serves(l.Name) {
			return b.addr(l), true
		}
	}
	return netip.AddrPort{}, false
}
