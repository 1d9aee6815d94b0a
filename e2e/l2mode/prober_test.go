package l2mode

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/pier-lb/pier/e2e/lab"
)

// prober asks for one address every interval from a host's interface and
// records which MAC answered when: a failover gap is the time between the
// last reply of the old owner (or the kill) and the first of the new one.
type prober struct {
	mu      sync.Mutex
	replies []reply
	stop    func()
}

type reply struct {
	at  time.Time
	mac string
}

func startProber(t testing.TB, h *lab.Host, iface string, addr netip.Addr, every time.Duration) *prober {
	t.Helper()
	var c *arp.Client
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		t.Fatalf("ARP prober in %s: %v", h.Name, err)
	}
	p := &prober{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.send(ctx, c, addr, every) })
	wg.Go(func() { p.read(ctx, c, addr) })
	var once sync.Once
	p.stop = func() { once.Do(func() { cancel(); c.Close(); wg.Wait() }) }
	t.Cleanup(p.stop)
	return p
}

func (p *prober) send(ctx context.Context, c *arp.Client, addr netip.Addr, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		_ = c.Request(addr)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *prober) read(ctx context.Context, c *arp.Client, addr netip.Addr) {
	for ctx.Err() == nil {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		pkt, _, err := c.Read()
		if err != nil || pkt.Operation != arp.OperationReply || pkt.SenderIP != addr {
			continue
		}
		p.mu.Lock()
		p.replies = append(p.replies, reply{time.Now(), pkt.SenderHardwareAddr.String()})
		p.mu.Unlock()
	}
}

// firstAfter returns the first reply after t from a MAC other than old.
func (p *prober) firstAfter(t time.Time, old string) (reply, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.at.After(t) && r.mac != old {
			return r, true
		}
	}
	return reply{}, false
}

// countFrom is the number of replies from mac after t.
func (p *prober) countFrom(t time.Time, mac string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.replies {
		if r.at.After(t) && r.mac == mac {
			n++
		}
	}
	return n
}

// macsSince lists the distinct MACs that answered after t.
func (p *prober) macsSince(t time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, r := range p.replies {
		if r.at.After(t) && !seen[r.mac] {
			seen[r.mac] = true
			out = append(out, r.mac)
		}
	}
	return out
}

// countSince is the number of replies after t.
func (p *prober) countSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.replies {
		if r.at.After(t) {
			n++
		}
	}
	return n
}

// gapsSince lists the silences longer than max between replies after t
// (and up to now).
func (p *prober) gapsSince(t time.Time, max time.Duration) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gaps []time.Duration
	last := t
	for _, r := range p.replies {
		if !r.at.After(t) {
			continue
		}
		if g := r.at.Sub(last); g > max {
			gaps = append(gaps, g.Round(time.Millisecond))
		}
		last = r.at
	}
	if g := time.Since(last); g > max {
		gaps = append(gaps, g.Round(time.Millisecond))
	}
	return gaps
}
