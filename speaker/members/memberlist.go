package members

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/utils/clock"
)

// ErrRunning is returned by Run while another Run of the same Members is
// active.
var ErrRunning = errors.New("members already running")

// label is put on every packet and stream: other memberlist clusters on the
// same port (another product, another Pier) are rejected instead of merged.
const label = "pier-speaker"

// Members is this node's view of which speakers are alive, kept by
// memberlist gossip. Methods are safe for concurrent use.
type Members struct {
	name    string
	bind    netip.AddrPort
	key     []byte
	others  [][]byte // accepted, never used to encrypt
	timers  Timers
	log     *slog.Logger
	metrics *Metrics
	clock   clock.WithTicker
	inNS    func(func() error) error

	changes      chan struct{}
	peersChanged chan struct{}
	verdicts     chan struct{} // a value after a member left or was declared dead
	contact      chan struct{} // a value at the first contact with a peer of a Run
	settled      atomic.Bool
	created      func() // test hook: runs between creating the list and storing it

	mu      sync.Mutex
	meta    []byte
	given   []byte // the meta memberlist last took (NodeMeta)
	peers   []netip.AddrPort
	live    map[string]member
	list    *memberlist.Memberlist
	running bool
	gen     int // incremented by each Run, so late events of an old list are dropped
}

type member struct {
	addr netip.AddrPort
	meta []byte
}

// New validates opts and prepares a member; it opens no socket.
func New(opts Options) (*Members, error) {
	opts.Timers = opts.Timers.withDefaults(FastLAN())
	def(&opts.BindPort, DefaultPort)
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	peers, _ := parsePeers(opts.Peers, opts.BindPort)
	m := &Members{
		name:         opts.Name,
		bind:         netip.AddrPortFrom(opts.BindAddr.Unmap(), uint16(opts.BindPort)),
		key:          bytes.Clone(opts.SecretKey),
		others:       cloneKeys(opts.SecondaryKeys),
		timers:       opts.Timers,
		log:          opts.Logger,
		metrics:      opts.Metrics,
		clock:        opts.Clock,
		inNS:         opts.Namespace,
		changes:      make(chan struct{}, 1),
		peersChanged: make(chan struct{}, 1),
		verdicts:     make(chan struct{}, 1),
		contact:      make(chan struct{}, 1),
		meta:         bytes.Clone(opts.Meta),
		peers:        peers,
		live:         map[string]member{},
	}
	m.setDefaults()
	return m, nil
}

func (m *Members) setDefaults() {
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "members", "node", m.name)
	if m.metrics == nil {
		m.metrics = NewMetrics(nil)
	}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if m.inNS == nil {
		m.inNS = func(fn func() error) error { return fn() }
	}
}

// Run creates the member list on BindAddr:BindPort, joins the peers, keeps
// re-joining peers that are not members, and when ctx ends leaves the group
// (so the others drop this node at once instead of detecting its failure)
// and shuts down. The leave goes out at once even while a join waits for an
// unreachable peer; Run itself returns when that join gives up (at most
// Timers.TCPTimeout later). It returns nil after a clean leave.
func (m *Members) Run(ctx context.Context) error {
	gen, err := m.begin()
	if err != nil {
		return err
	}
	defer m.end()
	ml, err := m.create(gen)
	if err != nil {
		return err
	}
	if m.created != nil {
		m.created()
	}
	m.mu.Lock()
	m.list = ml
	// A SetMeta between creating the list and storing it found no list to
	// gossip through: the list holds the meta it was created with.
	stale := !bytes.Equal(m.given, m.meta)
	m.mu.Unlock()
	if stale {
		if err := ml.UpdateNode(m.timers.LeaveTimeout); err != nil {
			m.log.Warn("gossip metadata set while starting", "err", err)
		}
	}
	m.log.Info("member started", "addr", m.bind)
	var wg sync.WaitGroup
	wg.Go(func() { m.rejoinLoop(ctx, ml) })
	wg.Go(func() { m.settle(ctx) })
	<-ctx.Done()
	err = m.leave(ml) // first: a join in flight must not delay the leave
	wg.Wait()
	return err
}

// Settled reports whether this member's view of the others can be acted
// on: SettleDelay after its first contact with a peer, or SettleTimeout
// after Run started when it reached none. Before that, the view holds this
// node alone (or the few peers heard of so far), and a speaker that acted
// on it would claim addresses that others own.
func (m *Members) Settled() bool { return m.settled.Load() }

// settle marks the view settled (and notifies) once it may be acted on.
func (m *Members) settle(ctx context.Context) {
	alone := m.clock.NewTimer(m.timers.SettleTimeout)
	defer alone.Stop()
	select {
	case <-ctx.Done():
		return
	case <-alone.C():
		m.log.Info("no peer reached, acting alone", "after", m.timers.SettleTimeout)
	case <-m.contact:
		select {
		case <-ctx.Done():
			return
		case <-m.clock.After(m.timers.SettleDelay):
		}
		m.log.Info("view settled", "live", m.Live())
	}
	m.settled.Store(true)
	m.notify()
}

// contacted records a contact with a peer (settle waits for the first).
func (m *Members) contacted() {
	select {
	case m.contact <- struct{}{}:
	default:
	}
}

func (m *Members) begin() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running {
		return 0, fmt.Errorf("members %s: %w", m.name, ErrRunning)
	}
	m.running = true
	m.gen++
	m.settled.Store(false)
	select {
	case <-m.contact: // from an earlier Run
	default:
	}
	return m.gen, nil
}

// end forgets the list and every member: a node that is not running sees
// nobody, itself included.
func (m *Members) end() {
	m.mu.Lock()
	m.running = false
	m.list = nil
	m.gen++
	m.settled.Store(false)
	clear(m.live)
	m.mu.Unlock()
	m.metrics.live.Set(0)
	m.notify()
}

func (m *Members) create(gen int) (*memberlist.Memberlist, error) {
	logger := log.New(logWriter{m.log}, "", 0)
	t, err := newTransport(m.bind.Addr().String(), int(m.bind.Port()), logger, m.inNS)
	if err != nil {
		return nil, fmt.Errorf("members %s: %w", m.name, err)
	}
	c, err := m.config(gen, t, logger)
	if err != nil {
		_ = t.Shutdown()
		return nil, fmt.Errorf("members %s: %w", m.name, err)
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		_ = t.Shutdown()
		return nil, fmt.Errorf("members %s: create on %s: %w", m.name, m.bind, err)
	}
	return ml, nil
}

func (m *Members) config(gen int, t memberlist.Transport, logger *log.Logger) (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = m.name
	c.Transport = t
	c.BindAddr, c.BindPort = m.bind.Addr().String(), int(m.bind.Port())
	c.AdvertiseAddr, c.AdvertisePort = c.BindAddr, c.BindPort
	c.Label = label
	c.SecretKey = bytes.Clone(m.key)
	if len(m.others) > 0 {
		// The keyring decrypts with any of its keys and encrypts with its
		// primary, which memberlist sets to SecretKey.
		kr, err := memberlist.NewKeyring(cloneKeys(m.others), bytes.Clone(m.key))
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		c.Keyring = kr
	}
	c.Logger = logger
	// No LZW on every probe and ack: compressing packets this small saves
	// nothing and, with the garbage its tables leave, was a large share
	// of an idle member's CPU (docs/scale.md). Members still read compressed messages (an
	// older speaker during a rollout): memberlist decodes them whatever
	// this says.
	c.EnableCompression = false
	h := &hooks{m: m, gen: gen}
	c.Delegate, c.Events, c.Conflict = h, h, h
	m.timers.apply(c)
	return c, nil
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		out = append(out, bytes.Clone(k))
	}
	return out
}

func (t Timers) apply(c *memberlist.Config) {
	c.ProbeInterval, c.ProbeTimeout = t.ProbeInterval, t.ProbeTimeout
	c.IndirectChecks = t.IndirectChecks
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.GossipInterval, c.GossipNodes = t.GossipInterval, t.GossipNodes
	c.RetransmitMult = t.RetransmitMult
	c.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
	c.TCPTimeout = t.TCPTimeout
	c.PushPullInterval = t.PushPullInterval
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	// A node that comes back under its name with a new address (re-IPed)
	// is accepted once its old self has been dead this long.
	c.DeadNodeReclaimTime = 2 * t.GossipToTheDeadTime
}

func (m *Members) rejoinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	tick := m.clock.NewTicker(m.timers.RejoinInterval)
	defer tick.Stop()
	joinOne := func(addr string) error {
		_, err := ml.Join([]string{addr})
		return err
	}
	retry := newRetry(m.clock, 2*m.timers.ProbeInterval, m.timers.RejoinInterval)
	defer retry.stop()
	failing := false
	for join := true; join; join = m.joinDue(ctx, tick, retry) {
		was := failing
		if failing = m.join(joinOne, failing); failing && !was {
			// The peers may not be up yet (a site starting, a rollout):
			// try again soon, not a whole RejoinInterval later.
			retry.start()
		}
	}
}

// joinDue waits until the missing peers are to be joined again: at the
// tick, when the peers changed, or at a retry after a verdict. It returns
// false when ctx ends.
func (m *Members) joinDue(ctx context.Context, tick clock.Ticker, retry *retry) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C():
		case <-m.peersChanged:
		case <-m.verdicts:
			retry.start() // not at once: the peer is gone or not heard yet
			continue
		case <-retry.C():
			retry.next()
		}
		return true
	}
}

// retry joins the missing peers again soon after each verdict (a member
// left or was declared dead) and after a round that reached none of them
// where the one before did, at delays doubling from first while they are
// shorter than last, the RejoinInterval tick. A verdict
// may be wrong: a member that could not hear its peers for a while (a
// stall, loss one way) declares them dead, they declare it dead in turn,
// and their refutations go out while it cannot hear them. Memberlist
// repeats none of it, so both sides keep the other dead, each claiming the
// other's addresses, until a join: without these, the next tick.
type retry struct {
	clock       clock.Clock
	first, last time.Duration
	delay       time.Duration
	timer       clock.Timer // nil while no retry is due
}

func newRetry(c clock.Clock, first, last time.Duration) *retry {
	return &retry{clock: c, first: first, last: last}
}

func (r *retry) start() {
	r.delay = r.first
	r.arm()
}

func (r *retry) next() {
	r.delay *= 2
	r.arm()
}

func (r *retry) arm() {
	r.stop()
	if r.delay >= r.last {
		return
	}
	r.timer = r.clock.NewTimer(r.delay)
}

// C is the due retry's channel; nil (never ready) while none is due.
func (r *retry) C() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C()
}

func (r *retry) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// maxJoinsPerRound bounds the missing peers one round joins, picked at
// random. One live member is enough to learn the whole group: its state
// comes with the join's push-pull, and gossip brings the rest. Joining
// every missing peer made N starting speakers open N-1 push-pulls of the
// whole state each; at 100 nodes on two cores that starved the group into
// flapping, and members that flapped were all joined again.
const maxJoinsPerRound = 3

// join joins some of the peers that are not members (maxJoinsPerRound), in
// parallel so that unreachable ones cost one TCPTimeout per round, not one
// each. It reports whether none could be reached, and logs only when that
// changes.
func (m *Members) join(joinOne func(addr string) error, failing bool) bool {
	missing := m.missing()
	if len(missing) == 0 {
		return false
	}
	targets := pickJoins(missing, maxJoinsPerRound)
	n, err := joinAll(joinOne, targets)
	if n > 0 {
		m.contacted()
		m.log.Debug("joined", "peers", n, "of", len(targets))
		return false
	}
	m.metrics.joinErrors.Inc()
	if !failing {
		m.log.Warn("cannot reach the missing peers tried, retrying", "tried", targets, "missing", len(missing), "err", err)
	}
	return true
}

// maxParallelJoins bounds the concurrent join attempts of one round.
const maxParallelJoins = 16

// pickJoins returns at most k of targets, chosen at random.
func pickJoins(targets []string, k int) []string {
	if len(targets) <= k {
		return targets
	}
	picked := slices.Clone(targets)
	rand.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
	return picked[:k]
}

func joinAll(joinOne func(addr string) error, targets []string) (int, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    int
		errs []error
		sem  = make(chan struct{}, maxParallelJoins)
	)
	for _, t := range targets {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := joinOne(t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
		})
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// missing lists the peers that are neither this node nor a member's address.
func (m *Members) missing() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	known := map[netip.AddrPort]bool{m.bind: true}
	for _, mb := range m.live {
		known[mb.addr] = true
	}
	var out []string
	for _, p := range m.peers {
		if !known[p] {
			out = append(out, p.String())
		}
	}
	return out
}

func (m *Members) leave(ml *memberlist.Memberlist) error {
	m.mu.Lock()
	m.list = nil // no more SetMeta broadcasts
	m.mu.Unlock()
	if err := ml.Leave(m.timers.LeaveTimeout); err != nil {
		m.log.Warn("leave not confirmed, shutting down anyway", "err", err)
	}
	if err := ml.Shutdown(); err != nil {
		return fmt.Errorf("members %s: shut down: %w", m.name, err)
	}
	m.log.Info("member left")
	return nil
}

// Live returns the sorted names of the live members (alive or suspect),
// this node included. Empty while Run is not running.
func (m *Members) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.live))
	for n := range m.live {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Changes delivers a value after the live set or a member's metadata
// changed; notifications coalesce (buffer 1), so read Live and MetaOf after
// each.
func (m *Members) Changes() <-chan struct{} { return m.changes }

func (m *Members) notify() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// MetaOf returns a copy of a live member's metadata, nil when it is not
// live.
func (m *Members) MetaOf(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.live[name].meta)
}

// SetMeta replaces this node's metadata and gossips it. It waits at most
// Timers.LeaveTimeout for the broadcast to go out; on a timeout error the
// update stays queued and still spreads.
func (m *Members) SetMeta(meta []byte) error {
	if err := checkMeta(meta); err != nil {
		return fmt.Errorf("members %s: %w", m.name, err)
	}
	m.mu.Lock()
	m.meta = bytes.Clone(meta)
	ml := m.list
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	if err := ml.UpdateNode(m.timers.LeaveTimeout); err != nil {
		return fmt.Errorf("members %s: gossip metadata: %w", m.name, err)
	}
	return nil
}

// SetPeers replaces the join targets ("addr" or "addr:port", e.g. the
// other Nodes' internal addresses) and joins the new ones soon. Bad entries
// are reported in the error and skipped; the others are applied.
func (m *Members) SetPeers(peers []string) error {
	parsed, err := parsePeers(peers, int(m.bind.Port()))
	m.mu.Lock()
	m.peers = parsed
	m.mu.Unlock()
	select {
	case m.peersChanged <- struct{}{}:
	default:
	}
	if err != nil {
		return fmt.Errorf("members %s: %w", m.name, err)
	}
	return nil
}

// String is for logs.
func (m *Members) String() string {
	return m.name + "@" + m.bind.Addr().String() + ":" + strconv.Itoa(int(m.bind.Port()))
}
