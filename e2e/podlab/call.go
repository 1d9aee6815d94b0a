package podlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/lab"
)

// Call is a call's media: UDP datagrams at 50/s from one client socket to a
// calling server behind addr, with the arrival time and answering server of
// every reply.
type Call struct {
	pc     net.PacketConn
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	sent    int
	replies []CallReply
}

// CallReply is one answered datagram.
type CallReply struct {
	At     time.Time
	Server string
	Client netip.AddrPort // the client the server saw
}

// CallStats sums up a call.
type CallStats struct {
	Sent, Answered int
	// LongestGap is the longest time without a reply, from the first
	// reply to the end of the call.
	LongestGap time.Duration
	// Servers are the servers that answered, in order of first answer.
	Servers []string
	// Clients are the client addresses the servers saw, in order.
	Clients []netip.AddrPort
}

func (s CallStats) String() string {
	return fmt.Sprintf("sent %d, answered %d, longest gap %v, servers %v, clients seen %v",
		s.Sent, s.Answered, s.LongestGap.Round(time.Millisecond), s.Servers, s.Clients)
}

// StartCall starts a call from h to dst.
func StartCall(h *lab.Host, dst netip.AddrPort) (*Call, error) {
	pc, err := h.ListenPacket("udp4", ":0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Call{pc: pc, cancel: cancel, done: make(chan struct{})}
	go c.read()
	go c.send(ctx, net.UDPAddrFromAddrPort(dst))
	return c, nil
}

func (c *Call) send(ctx context.Context, dst *net.UDPAddr) {
	defer close(c.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := c.pc.WriteTo(fmt.Appendf(nil, "rtp-%d", seq), dst); err == nil {
			c.mu.Lock()
			c.sent++
			c.mu.Unlock()
		}
	}
}

func (c *Call) read() {
	buf := make([]byte, 2048)
	for {
		n, _, err := c.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		w, err := echo.ParseWhoami(string(buf[:n]))
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.replies = append(c.replies, CallReply{At: time.Now(), Server: w.Name, Client: w.Client})
		c.mu.Unlock()
	}
}

// Stats sums up the call so far; now ends the last gap.
func (c *Call) Stats(now time.Time) CallStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := CallStats{Sent: c.sent, Answered: len(c.replies)}
	for i, r := range c.replies {
		if !slices.Contains(s.Servers, r.Server) {
			s.Servers = append(s.Servers, r.Server)
		}
		if !slices.Contains(s.Clients, r.Client) {
			s.Clients = append(s.Clients, r.Client)
		}
		if i > 0 {
			s.LongestGap = max(s.LongestGap, r.At.Sub(c.replies[i-1].At))
		}
	}
	if n := len(c.replies); n > 0 {
		s.LongestGap = max(s.LongestGap, now.Sub(c.replies[n-1].At))
	}
	return s
}

// Port is the call's UDP source port.
func (c *Call) Port() uint16 {
	return c.pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

// Answered returns how many replies have arrived.
func (c *Call) Answered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.replies)
}

// Stop ends the call and returns its stats.
func (c *Call) Stop() CallStats {
	c.cancel()
	<-c.done
	time.Sleep(100 * time.Millisecond) // the last replies in flight
	s := c.Stats(time.Now().Add(-100 * time.Millisecond))
	c.pc.Close()
	return s
}
