package relay

import (
	"context"
	"net"
	"net/netip"
	"sync"
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
	defer r.mu.Unlock()
	r.rebuildLocked()
}

func (r *Relay) markUp(b *backend) {
	if !b.up.CompareAndSwap(false, true) {
		return
	}
	r.log.Info("backend up", "backend", b.Name, "addr", b.Addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rebuildLocked()
}

// healthLoop checks the down backends every HealthInterval until ctx ends.
func (r *Relay) healthLoop(ctx context.Context) {
	t := r.clock.NewTicker(r.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			r.checkDown(ctx)
		}
	}
}

func (r *Relay) checkDown(ctx context.Context) {
	r.mu.Lock()
	var down []*backend
	for _, b := range r.backends {
		if !b.up.Load() {
			down = append(down, b)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range down {
		wg.Go(func() {
			if r.probe(ctx, b) {
				r.markUp(b)
			}
		})
	}
	wg.Wait()
}

// probe reports whether b looks alive: a TCP connect to its health port, or,
// with no TCP port to try, the passing of 10 health intervals.
func (r *Relay) probe(ctx context.Context, b *backend) bool {
	target, ok := r.healthTarget(b)
	if !ok {
		hold := 10 * r.opts.HealthInterval
		return r.clock.Since(time.Unix(0, b.downedAt.Load())) >= hold
	}
	timeout := min(r.opts.ConnectTimeout, 2*r.opts.HealthInterval)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", target.String())
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (r *Relay) healthTarget(b *backend) (netip.AddrPort, bool) {
	if b.HealthPort != 0 {
		return netip.AddrPortFrom(b.Addr, b.HealthPort), true
	}
	for _, l := range r.opts.Listeners {
		if l.Protocol == TCP {
			return b.addr(l), true
		}
	}
	return netip.AddrPort{}, false
}
