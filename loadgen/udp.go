package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn is the sendmmsg/recvmmsg side of an ipv4 or ipv6 PacketConn
// (both use the same Message type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpFlow is one source port. In the closed loop one goroutine owns it; in
// the open loop the sender owns out/seq/sent and the receiver the rest.
type udpFlow struct {
	tally
	id   uint32
	conn *net.UDPConn
	bc   batchConn
	out  []ipv4.Message
	seq  uint64
	in   []ipv4.Message
}

func (g *Generator) openUDP(id int) (*udpFlow, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(g.opts.Target))
	if err != nil {
		return nil, fmt.Errorf("loadgen: flow %d to %s: %w", id, g.opts.Target, err)
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	f := &udpFlow{id: uint32(id), conn: c}
	f.hist = NewHistogram()
	if g.opts.Target.Addr().Is4() {
		f.bc = ipv4.NewPacketConn(c)
	} else {
		f.bc = ipv6.NewPacketConn(c)
	}
	f.out, f.in = messages(g.opts.Batch, g.opts.Size), messages(g.opts.Batch, 65536)
	return f, nil
}

func messages(n, size int) []ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, size)}
	}
	return ms
}

// send writes k datagrams (k at most Batch) and returns how many left.
func (f *udpFlow) send(k int, start time.Time) int {
	now := int64(time.Since(start))
	for i := range k {
		_ = Encode(f.out[i].Buffers[0], Header{Flow: f.id, Seq: f.seq + uint64(i), Sent: now})
	}
	n, err := f.bc.WriteBatch(f.out[:k], 0)
	if err != nil {
		f.errs++
	}
	n = max(n, 0)
	f.seq += uint64(n)
	f.sent.Add(uint64(n))
	return n
}

// receive reads one batch (blocking until at least one datagram, the read
// deadline or an error) and records it; it returns the valid echoes.
func (f *udpFlow) receive(start time.Time, size int, end time.Duration) (int, error) {
	n, err := f.bc.ReadBatch(f.in, 0)
	if n <= 0 {
		return 0, err
	}
	now := time.Since(start)
	valid := 0
	for _, m := range f.in[:n] {
		h, derr := Decode(m.Buffers[0][:m.N])
		switch {
		case derr != nil || h.Flow != f.id || m.N != size:
			f.invalid++
		case h.Sent < 0: // a priming echo
		default:
			f.hist.Record(now - time.Duration(h.Sent))
			if now <= end {
				f.inRun++
			}
			valid++
		}
	}
	f.recv.Add(uint64(valid))
	return valid, nil
}

// prime sends one datagram and waits for its echo, so the target has placed
// the flow before the run (and a target that echoes nothing fails here).
func (f *udpFlow) prime(ctx context.Context, size int) error {
	out, in := make([]byte, size), make([]byte, 65536)
	_ = Encode(out, Header{Flow: f.id, Sent: -1})
	defer f.conn.SetReadDeadline(time.Time{})
	var last error
	for range 20 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.conn.Write(out); err != nil {
			last = err
		}
		_ = f.conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := f.conn.Read(in)
		if err != nil {
			last = err
			continue
		}
		if h, err := Decode(in[:n]); err == nil && h.Flow == f.id {
			return nil
		}
		last = errors.New("echo of someone else's datagram")
	}
	return fmt.Errorf("loadgen: no echo on flow %d: %w", f.id, last)
}

func (g *Generator) runUDP(ctx context.Context) (Result, error) {
	flows := make([]*udpFlow, 0, g.opts.Flows)
	defer func() {
		for _, f := range flows {
			f.conn.Close()
		}
	}()
	for i := range g.opts.Flows {
		f, err := g.openUDP(i)
		if err != nil {
			return Result{}, err
		}
		flows = append(flows, f)
	}
	for _, f := range flows {
		if err := f.prime(ctx, g.opts.Size); err != nil {
			return Result{}, err
		}
	}
	start := time.Now()
	if g.opts.Rate == 0 && g.opts.Window > 0 {
		g.closedLoop(ctx, flows, start)
	} else {
		g.openLoop(ctx, flows, start)
	}
	ts := make([]*tally, len(flows))
	for i, f := range flows {
		ts[i] = &f.tally
	}
	return g.summarize(ts), ctx.Err()
}

// closedLoop keeps each flow's share of the window in flight until the end,
// then waits up to LossTimeout for the last echoes.
func (g *Generator) closedLoop(ctx context.Context, flows []*udpFlow, start time.Time) {
	win := perFlow(g.opts.Window, len(flows))
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Go(func() { g.closedFlow(ctx, f, start, win) })
	}
	wg.Wait()
}

func (g *Generator) closedFlow(ctx context.Context, f *udpFlow, start time.Time, win int) {
	end, lossTO := g.opts.Duration, g.opts.LossTimeout
	inflight := 0
	for ctx.Err() == nil && time.Since(start) < end {
		if free := win - inflight; free > 0 {
			inflight += f.send(min(free, g.opts.Batch), start)
		}
		_ = f.conn.SetReadDeadline(time.Now().Add(lossTO))
		n, err := f.receive(start, g.opts.Size, end)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			inflight = 0 // the window's datagrams are lost: start again
		case errors.Is(err, syscall.ECONNREFUSED):
			f.errs++
			inflight = 0
		default:
			inflight = max(inflight-n, 0)
		}
	}
	deadline := time.Now().Add(lossTO)
	_ = f.conn.SetReadDeadline(deadline)
	for f.recv.Load() < f.sent.Load() && time.Now().Before(deadline) {
		if _, err := f.receive(start, g.opts.Size, end); errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
			break
		}
	}
}

// openLoop sends at the paced rate from one goroutine while one goroutine
// per flow receives.
func (g *Generator) openLoop(ctx context.Context, flows []*udpFlow, start time.Time) {
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Go(func() {
			for {
				if _, err := f.receive(start, g.opts.Size, g.opts.Duration); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					return
				}
			}
		})
	}
	g.pacedSend(ctx, start, len(flows), func(flow, k int) int { return flows[flow].send(k, start) })
	waitEchoes(flows, g.opts.LossTimeout)
	for _, f := range flows {
		_ = f.conn.SetReadDeadline(time.Now()) // ends the receivers
	}
	wg.Wait()
}

// waitEchoes waits until every flow has its echoes or timeout passed.
func waitEchoes(flows []*udpFlow, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for _, f := range flows {
			if f.recv.Load() < f.sent.Load() {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
