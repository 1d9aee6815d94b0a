package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// headroom is the space kept in front of a received datagram so a PROXY v2
// header (at most 52 bytes for IPv6 without TLVs) is prepended in place.
const headroom = 64

// maxFreeBatches bounds a listener's free reply batches (32 KiB each with
// the default MaxDatagramSize). Flows waiting for the listener socket's
// write lock hold theirs, so with fewer, a burst over many flows allocates.
const maxFreeBatches = 64

// udpFlow is one client's flow: a socket connected to its backend.
type udpFlow struct {
	client netip.AddrPort
	b      *backend
	up     *net.UDPConn
	out    *net.UDPConn // listener socket replies leave through (the one that received the flow)
	oob    []byte       // IP_PKTINFO / IPV6_PKTINFO source for replies; nil when bound to one address
	header []byte       // PROXY v2 header, nil unless the backend wants it
}

// udpServer relays one UDP listener.
type udpServer struct {
	r        *Relay
	l        Listener
	log      *slog.Logger
	conns    []*net.UDPConn // SO_REUSEPORT group, one reader each
	local    netip.AddrPort
	wildcard bool
	flows    *FlowTable[*udpFlow]
	m        protoMetrics
	wg       sync.WaitGroup
	batches  chan *batch // free reply batches (Linux)
}

func (r *Relay) openUDP(l Listener, log *slog.Logger) (*udpServer, error) {
	conns, err := listenUDP(l.Addr, r.opts.UDPSockets)
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s udp %s: %w", l.Name, l.Addr, err)
	}
	s := &udpServer{
		r: r, l: l, log: log, conns: conns,
		local:    conns[0].LocalAddr().(*net.UDPAddr).AddrPort(),
		wildcard: l.Addr.Addr().IsUnspecified(),
		flows:    NewFlowTable[*udpFlow](r.opts.MaxFlows, r.opts.UDPIdleTimeout, r.clock),
		m:        r.metrics.forProto("udp"),
		batches:  make(chan *batch, maxFreeBatches),
	}
	s.flows.OnEvict(s.evicted)
	if s.wildcard {
		for _, c := range conns {
			if err := enablePktinfo(c); err != nil {
				s.close()
				return nil, fmt.Errorf("relay: listen %s udp %s: %w", l.Name, l.Addr, err)
			}
		}
	}
	r.setAddr(l.Name, s.local)
	return s, nil
}

// network is "udp4"/"tcp4" for IPv4 addresses: Go would otherwise open a
// dual-stack IPv6 socket for 0.0.0.0, where IP_PKTINFO does not apply. An
// IPv6 wildcard stays dual-stack.
func network(base string, a netip.AddrPort) string {
	if a.Addr().Is4() {
		return base + "4"
	}
	return base
}

func (s *udpServer) close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// serve runs one reader per listener socket until ctx ends.
func (s *udpServer) serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	s.wg.Go(func() { s.expireLoop(ctx) })
	defer s.shutdown()
	errs := make([]error, len(s.conns))
	var readers sync.WaitGroup
	for i, c := range s.conns {
		readers.Go(func() {
			errs[i] = s.read(ctx, c)
			s.close() // one reader failing stops the listener
		})
	}
	readers.Wait()
	return errors.Join(errs...)
}

// shutdown closes every flow and waits for their readers.
func (s *udpServer) shutdown() {
	for _, f := range s.flows.Drain() {
		_ = f.Value.up.Close()
		s.m.active.Dec()
	}
	s.wg.Wait()
}

// forward sends buf[headroom:headroom+n] from client to its flow's backend,
// placing the flow first if needed. A backend that refuses is marked down and
// the datagram goes to the next owner.
func (s *udpServer) forward(conn *net.UDPConn, client, dst netip.AddrPort, buf []byte, n int) {
	for range 2 {
		f, ok := s.flow(conn, client, dst, buf[headroom:headroom+n])
		if !ok {
			return
		}
		p := buf[headroom : headroom+n]
		if h := f.Value.header; h != nil {
			copy(buf[headroom-len(h):], h)
			p = buf[headroom-len(h) : headroom+n]
		}
		_, err := f.Value.up.Write(p)
		if err == nil {
			s.m.packetsIn.Inc()
			s.m.bytesIn.Add(float64(n))
			return
		}
		if !unreachable(err) {
			s.m.drop(dropUpstream)
			return
		}
		s.r.markDown(f.Value.b, "udp unreachable", err)
		s.closeFlow(client, f)
	}
	s.m.drop(dropUpstream)
}

// flow returns client's flow, placing a new one when there is none or its
// backend is down; p is the datagram, read for the token of a new flow.
func (s *udpServer) flow(conn *net.UDPConn, client, dst netip.AddrPort, p []byte) (*Flow[*udpFlow], bool) {
	f, ok := s.flows.Get(client)
	if ok && f.Value.b.up.Load() {
		return f, true
	}
	if ok {
		s.closeFlow(client, f)
		p = nil // not a new flow: placed again by Maglev
	}
	if !s.flows.Room() {
		s.m.drop(dropTableFull)
		return nil, false
	}
	uf, err := s.dial(conn, client, dst, p)
	if err != nil {
		s.m.drop(dropReason(err))
		s.log.Debug("no upstream", "client", client, "err", err)
		return nil, false
	}
	f, inserted, err := s.flows.Insert(client, uf.b.Name, uf)
	if !inserted {
		_ = uf.up.Close()
		if err != nil {
			s.m.drop(dropTableFull)
			return nil, false
		}
		return f, true
	}
	s.m.active.Inc()
	s.wg.Go(func() { s.replies(f) })
	return f, true
}

func (s *udpServer) dial(conn *net.UDPConn, client, dst netip.AddrPort, first []byte) (*udpFlow, error) {
	b, err := s.r.place(s.l, client, first, s.m)
	if err != nil {
		return nil, err
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.addr(s.l)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", b.Name, err)
	}
	uf := &udpFlow{client: client, b: b, up: up, out: conn}
	if s.wildcard {
		uf.oob = pktinfoSrc(dst.Addr(), s.local.Addr().Is6())
	}
	if b.ProxyProtocol {
		if uf.header, err = proxyHeader(UDP, client, dst); err != nil {
			_ = up.Close()
			return nil, err
		}
	}
	return uf, nil
}

// unreachable reports an error on a connected UDP socket that says the
// backend cannot be reached: ICMP port unreachable (ECONNREFUSED), or no
// route or host unreachable returned by a send. (Linux reports ICMP host
// unreachable, including its own after a failed ARP/NDP resolution, to a
// socket only with IP_RECVERR, which the relay does not set.)
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN)
}

func (s *udpServer) closeFlow(client netip.AddrPort, f *Flow[*udpFlow]) {

	if s.flows.Delete(client, f) {
		_ = f.Value.up.Close()
		s.m.active.Dec()
	}
}

// evicted closes a one-datagram flow evicted from the full table for a new
// flow (see FlowTable).
func (s *udpServer) evicted(f *Flow[*udpFlow]) {
	_ = f.Value.up.Close()
	s.m.active.Dec()
	s.r.metrics.evictions.Inc()
}

// expireLoop closes idle flows.
func (s *udpServer) expireLoop(ctx context.Context) {
	every := min(max(s.r.opts.UDPIdleTimeout/4, 10*time.Millisecond), time.Second)
	t := s.r.clock.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			for _, f := range s.flows.Expire() {
				_ = f.Value.up.Close()
				s.m.active.Dec()
			}
		}
	}
}

// FlowBackends returns, for a UDP listener, each client's backend.
func (r *Relay) FlowBackends(listener string) map[netip.AddrPort]string {
	r.addrsMu.Lock()
	s := r.udp[listener]
	r.addrsMu.Unlock()
	if s == nil {
		return nil
	}
	return s.flows.Backends()
}
