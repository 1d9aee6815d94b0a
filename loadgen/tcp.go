package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// dialAll opens Flows connections to the target.
func (g *Generator) dialAll(ctx context.Context) ([]*net.TCPConn, error) {
	var conns []*net.TCPConn
	d := net.Dialer{Timeout: 5 * time.Second}
	for i := range g.opts.Flows {
		c, err := d.DialContext(ctx, "tcp", g.opts.Target.String())
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("loadgen: connection %d to %s: %w", i, g.opts.Target, err)
		}
		conns = append(conns, c.(*net.TCPConn))
	}
	return conns, nil
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		c.Close()
	}
}

// drainWait is how long a bulk run waits, after it stopped writing, for the
// server to confirm it read everything by closing.
const drainWait = 10 * time.Second

// runBulk writes Chunk-sized blocks on every connection for Duration, then
// half-closes and waits for the server's close: Bytes counts only what the
// server read, and the time runs until the last connection's close arrived.
func (g *Generator) runBulk(ctx context.Context) (Result, error) {
	conns, err := g.dialAll(ctx)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(conns)
	stop := context.AfterFunc(ctx, func() { closeAll(conns) })
	defer stop()
	start := time.Now()
	end := start.Add(g.opts.Duration)
	var total atomic.Int64
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			n, err := bulkConn(c, g.opts.Chunk, end)
			total.Add(n)
			errs[i] = err
		})
	}
	wg.Wait()
	res := g.result(time.Since(start))
	res.Bytes = total.Load()
	res.finish(nil, 0)
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("loadgen: bulk to %s: %w", g.opts.Target, err)
	}
	return res, ctx.Err()
}

func bulkConn(c *net.TCPConn, chunk int, end time.Time) (int64, error) {
	buf := make([]byte, chunk)
	var n int64
	_ = c.SetWriteDeadline(end)
	for time.Now().Before(end) {
		w, err := c.Write(buf)
		n += int64(w)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			return n, err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return n, err
	}
	_ = c.SetReadDeadline(time.Now().Add(drainWait))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return n, fmt.Errorf("waiting for the server to close: %w", err)
	}
	return n, nil
}

// rrConn is one request/response connection.
type rrConn struct {
	tally
	id  uint32
	c   *net.TCPConn
	out []byte
	seq uint64
}

func (r *rrConn) send(k int, start time.Time) int {
	for i := range k {
		_ = Encode(r.out, Header{Flow: r.id, Seq: r.seq, Sent: int64(time.Since(start))})
		if _, err := r.c.Write(r.out); err != nil {
			r.errs++
			return i
		}
		r.seq++
		r.sent.Add(1)
	}
	return k
}

// readOne reads one echoed request; false when the connection ended.
func (r *rrConn) readOne(buf []byte, start time.Time, end time.Duration) bool {
	if _, err := io.ReadFull(r.c, buf); err != nil {
		return false
	}
	now := time.Since(start)
	h, err := Decode(buf)
	if err != nil || h.Flow != r.id {
		r.invalid++
		return true
	}
	r.hist.Record(now - time.Duration(h.Sent))
	if now <= end {
		r.inRun++
	}
	r.recv.Add(1)
	return true
}

// runRR sends Size-byte requests to an echo server and times each echo:
// open loop at Rate over all connections, or with Rate 0 a window of
// requests per connection.
func (g *Generator) runRR(ctx context.Context) (Result, error) {
	conns, err := g.dialAll(ctx)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(conns)
	stop := context.AfterFunc(ctx, func() { closeAll(conns) })
	defer stop()
	rr := make([]*rrConn, len(conns))
	for i, c := range conns {
		_ = c.SetNoDelay(true)
		rr[i] = &rrConn{id: uint32(i), c: c, out: make([]byte, g.opts.Size)}
		rr[i].hist = NewHistogram()
	}
	start := time.Now()
	if g.opts.Rate > 0 {
		g.rrOpen(ctx, rr, start)
	} else {
		g.rrClosed(ctx, rr, start)
	}
	ts := make([]*tally, len(rr))
	for i, r := range rr {
		ts[i] = &r.tally
	}
	return g.summarize(ts), ctx.Err()
}

func (g *Generator) rrOpen(ctx context.Context, rr []*rrConn, start time.Time) {
	var wg sync.WaitGroup
	for _, r := range rr {
		wg.Go(func() {
			buf := make([]byte, g.opts.Size)
			for r.readOne(buf, start, g.opts.Duration) {
			}
		})
	}
	g.pacedSend(ctx, start, len(rr), func(i, k int) int { return rr[i].send(k, start) })
	deadline := time.Now().Add(g.opts.LossTimeout)
	for _, r := range rr {
		for r.recv.Load() < r.sent.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_ = r.c.SetReadDeadline(time.Now())
	}
	wg.Wait()
}

func (g *Generator) rrClosed(ctx context.Context, rr []*rrConn, start time.Time) {
	win := perFlow(g.opts.Window, len(rr))
	var wg sync.WaitGroup
	for _, r := range rr {
		wg.Go(func() {
			buf := make([]byte, g.opts.Size)
			for ctx.Err() == nil && time.Since(start) < g.opts.Duration {
				k := r.send(win, start)
				_ = r.c.SetReadDeadline(time.Now().Add(max(g.opts.LossTimeout, time.Second)))
				for range k {
					if !r.readOne(buf, start, g.opts.Duration) {
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
