package l2

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Announcement is one address to answer for on one interface: IPv4
// addresses over ARP, IPv6 addresses over NDP.
type Announcement struct {
	Addr  netip.Addr
	Iface string
}

func (an Announcement) String() string { return an.Addr.String() + " on " + an.Iface }

// Sentinel errors callers branch on.
var (
	// ErrInvalid: an announcement with no address, a non-unicast address
	// or a bad interface name. Set skips it and serves the rest.
	ErrInvalid = errors.New("invalid announcement")
	// ErrInterface: the interface does not exist or is down. Set skips the
	// announcements on it; a later Set tries again.
	ErrInterface = errors.New("interface unusable")
	// ErrStopped: Set after Run has returned.
	ErrStopped = errors.New("l2 announcer stopped")
)

// Defaults for Options: frames at 0, 0.5, 1.5, 3.5 and 7.5 s.
const (
	DefaultGratuitousCount    = 5
	DefaultGratuitousInterval = 500 * time.Millisecond
)

// Options configures an Announcer. The zero value is valid.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics // nil: unregistered metrics
	// GratuitousCount is how many gratuitous ARPs / unsolicited NAs go out
	// when an address is taken over; 0 means DefaultGratuitousCount and -1
	// none. The first is sent at once.
	GratuitousCount int
	// GratuitousInterval is the wait before a burst's second frame; each
	// later wait is twice the one before. 0 means
	// DefaultGratuitousInterval. The previous owner's speaker may see the
	// change seconds after this one and answer requests until then, and a
	// neighbour whose request it answered first keeps its MAC for up to a
	// minute; the burst's late frames correct such neighbours.
	GratuitousInterval time.Duration
	// Periodic, when not 0, re-announces every owned address that often,
	// for switches whose forwarding tables age out faster than clients ask.
	Periodic time.Duration
	// Clock times bursts, re-announcements and reopen back-off.
	Clock clock.WithTicker
	// Namespace runs fn in the network namespace the interfaces live in;
	// the announcer calls it around every socket it opens (at Set, and when
	// a responder reopens after an error). Sockets stay in the namespace
	// they were opened in. nil runs fn directly, in the caller's namespace.
	Namespace func(fn func() error) error
}

func (o *Options) validate() error {
	switch {
	case o.GratuitousCount < -1:
		return fmt.Errorf("l2: GratuitousCount %d: want -1 (none), 0 (default) or more", o.GratuitousCount)
	case o.GratuitousInterval < 0:
		return fmt.Errorf("l2: GratuitousInterval %s is negative", o.GratuitousInterval)
	case o.Periodic < 0:
		return fmt.Errorf("l2: Periodic %s is negative", o.Periodic)
	}
	o.GratuitousCount = cmp.Or(o.GratuitousCount, DefaultGratuitousCount)
	o.GratuitousCount = max(o.GratuitousCount, 0)
	o.GratuitousInterval = cmp.Or(o.GratuitousInterval, DefaultGratuitousInterval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Namespace == nil {
		o.Namespace = func(fn func() error) error { return fn() }
	}
	return nil
}

// Announcer answers ARP requests and Neighbor Solicitations for the
// addresses it is given, and announces them when it takes them over. It
// keeps one responder per interface and family with something to announce.
type Announcer struct {
	opts    Options
	log     *slog.Logger
	metrics [2]*familyMetrics

	running atomic.Bool
	started chan struct{} // closed when Run starts
	// yielding: each address is given up as soon as another host
	// announces it (Yield).
	yielding atomic.Bool

	mu      sync.Mutex // serialises Set, Owned and shutdown
	ctx     context.Context
	stopped bool
	links   map[linkKey]*link
	wg      sync.WaitGroup
}

// New validates opts. It opens nothing: sockets are opened by Set, once Run
// is running.
func New(opts Options) (*Announcer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	a := &Announcer{
		opts:    opts,
		log:     opts.Logger.With("component", "l2"),
		started: make(chan struct{}),
		links:   make(map[linkKey]*link),
	}
	a.metrics[ipv4] = opts.Metrics.family(ipv4)
	a.metrics[ipv6] = opts.Metrics.family(ipv6)
	return a, nil
}

// Run serves until ctx ends, then stops answering, closes every socket and
// waits for its goroutines. It may be called once.
func (a *Announcer) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("l2: Run called twice")
	}
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
	close(a.started)
	if a.opts.Periodic > 0 {
		a.wg.Go(func() { a.reannounce(ctx) })
	}
	<-ctx.Done()
	a.mu.Lock()
	a.stopped = true
	for k, l := range a.links {
		l.close()
		delete(a.links, k)
	}
	a.setGauges()
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}

// Set makes desired the whole set of addresses this node answers for. It
// waits for Run to start. Addresses new to the set are answered for as soon
// as Set returns and announced with a gratuitous burst; removed ones are no
// longer answered; unchanged ones are left alone, so repeating a Set sends
// nothing. Announcements that cannot be served (invalid, interface missing
// or down) are reported together in the error and left out of the set, and
// a later Set tries them again; the others are served.
func (a *Announcer) Set(ctx context.Context, desired []Announcement) error {
	select {
	case <-a.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	want, err := group(desired)
	errs := []error{err}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	for k, l := range a.links {
		if _, ok := want[k]; !ok {
			l.close()
			delete(a.links, k)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(want), compareKeys) {
		errs = append(errs, a.apply(k, want[k])...)
	}
	a.setGauges()
	return errors.Join(errs...)
}

// apply brings one responder to the set want, opening it if needed.
func (a *Announcer) apply(k linkKey, want addrSet) []error {
	l := a.links[k]
	if l == nil {
		var err error
		if l, err = a.openLink(k); err != nil {
			return announceErrors(want.sorted(), k.iface, err)
		}
		a.links[k] = l
		a.wg.Go(l.serve)
	}
	errs := l.apply(diff(l.owned(), want))
	if len(l.owned()) == 0 {
		l.close()
		delete(a.links, k)
	}
	return errs
}

func announceErrors(addrs []netip.Addr, iface string, err error) []error {
	errs := make([]error, len(addrs))
	for i, addr := range addrs {
		errs[i] = fmt.Errorf("announce %s on %s: %w", addr, iface, err)
	}
	return errs
}

// Owned returns the announcements being served, sorted by address then
// interface.
func (a *Announcer) Owned() []Announcement {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Announcement
	for k, l := range a.links {
		for addr := range l.owned() {
			out = append(out, Announcement{Addr: addr, Iface: k.iface})
		}
	}
	slices.SortFunc(out, func(x, y Announcement) int {
		return cmp.Or(x.Addr.Compare(y.Addr), cmp.Compare(x.Iface, y.Iface))
	})
	return out
}

func (a *Announcer) setGauges() {
	var n [2]int
	for k, l := range a.links {
		n[k.fam] += len(l.owned())
	}
	a.metrics[ipv4].owned.Set(float64(n[ipv4]))
	a.metrics[ipv6].owned.Set(float64(n[ipv6]))
}

// Yield makes the announcer stop answering for an address as soon as
// another host announces it (gratuitous ARP, unsolicited NA): a node that
// leaves keeps answering until its successor speaks up, and not longer,
// so clients never hear two owners.
func (a *Announcer) Yield() { a.yielding.Store(true) }

// Reannounce sends one gratuitous frame (ARP reply or unsolicited NA) for
// every address served: after another node claimed addresses it does not
// own, clients learn the owners' MACs again.
func (a *Announcer) Reannounce() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.links {
		l.announceAll()
	}
}

// reannounce calls Reannounce every Periodic.
func (a *Announcer) reannounce(ctx context.Context) {
	t := a.opts.Clock.NewTicker(a.opts.Periodic)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		a.Reannounce()
	}
}

func compareKeys(x, y linkKey) int {
	return cmp.Or(cmp.Compare(x.iface, y.iface), cmp.Compare(x.fam, y.fam))
}
