package members

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/utils/clock"
)

// DefaultPort is the port members use for gossip, TCP and UDP.
const DefaultPort = 7946

// ErrInvalid is wrapped by every validation error from New, SetMeta and
// SetPeers.
var ErrInvalid = errors.New("invalid members options")

// Options configures a member. Name, BindAddr and SecretKey (or Insecure)
// are required.
type Options struct {
	// Name identifies this member: the node name. Unique in the cluster.
	Name string
	// BindAddr is the node address memberlist binds and advertises (TCP and
	// UDP); it must be reachable from the other nodes. BindPort defaults to
	// DefaultPort.
	BindAddr netip.Addr
	BindPort int
	// Peers are the other nodes' addresses, "addr" or "addr:port" (port
	// defaults to BindPort); no host names. Members joins them on start, and
	// keeps re-joining those that are not members (see SetPeers).
	Peers []string
	// SecretKey is the 16, 24 or 32 byte AES key that encrypts and
	// authenticates every gossip packet and stream (from a Kubernetes
	// Secret). Required unless Insecure is set.
	SecretKey []byte
	// SecondaryKeys are accepted besides SecretKey but never used to
	// encrypt: during a key rotation, speakers restarted with the new key
	// and those still on the old one must understand each other (see
	// Keyring). Each is 16, 24 or 32 bytes; they need SecretKey.
	SecondaryKeys [][]byte
	Insecure      bool
	// Meta is this member's metadata, gossiped with it (at most
	// memberlist.MetaMaxSize bytes); see SetMeta.
	Meta []byte
	// Timers tunes failure detection; zero fields take FastLAN's values.
	Timers Timers
	// Logger receives memberlist's own log lines too, with their levels.
	Logger  *slog.Logger
	Metrics *Metrics // default: unregistered metrics
	Clock   clock.WithTicker
	// Namespace runs fn with the calling OS thread in the network namespace
	// memberlist's sockets must live in (listeners and outgoing TCP dials).
	// Default: call fn directly. Tests use lab's Host.Do.
	Namespace func(fn func() error) error
}

// Timers are the failure detector's and gossip's intervals. See the package
// documentation for the reasoning behind FastLAN's numbers.
type Timers struct {
	// ProbeInterval is how often a member probes one other member (round
	// robin); a probe that gets no ack, direct or indirect, within one
	// interval makes the target suspect. ProbeTimeout is the wait for a
	// direct ack before asking IndirectChecks others to probe too.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	IndirectChecks int
	// SuspicionMult * max(1, log10(members)) * ProbeInterval is the
	// shortest time a suspect has to refute before it is declared dead.
	// memberlist waits for SuspicionMult-2 other members to confirm a
	// suspicion (none when fewer than that are left to confirm, as in a
	// 2-node cluster); an unconfirmed suspicion lasts
	// SuspicionMaxTimeoutMult times longer, shrinking towards the shortest
	// time as confirmations arrive. With SuspicionMult below 3 nobody
	// confirms and one member's suspicion is a verdict.
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	// GossipInterval and GossipNodes: how often, and to how many members,
	// pending broadcasts (suspect, dead, alive, meta updates) are sent.
	// RetransmitMult * ceil(log10(members+1)) is how often each is repeated.
	GossipInterval time.Duration
	GossipNodes    int
	RetransmitMult int
	// AwarenessMaxMultiplier bounds how far a member that finds itself slow
	// (missing nacks) stretches its own ProbeInterval.
	AwarenessMaxMultiplier int
	// TCPTimeout bounds stream operations: join, push/pull, TCP fallback
	// ping.
	TCPTimeout time.Duration
	// PushPullInterval is the period of full state syncs with one random
	// member (anti-entropy).
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long dead members still get gossip, so a
	// wrongly declared member learns it and refutes.
	GossipToTheDeadTime time.Duration
	// RejoinInterval is how often peers that are not members are joined
	// again (a node starting alone, a healed partition). After a member
	// left or was declared dead they are also joined at 2, 4, 8...
	// ProbeIntervals while that is shorter, so a wrong verdict heals in
	// a fraction of it.
	RejoinInterval time.Duration
	// LeaveTimeout bounds the wait for the leave broadcast on shutdown.
	LeaveTimeout time.Duration
	// SettleDelay is how long after its first contact with a peer (a join,
	// or a peer joining it) a starting member waits before it reports its
	// view settled (Settled): time for the others to hear of it, so that
	// addresses it takes over are let go by their interim owners first.
	SettleDelay time.Duration
	// SettleTimeout is how long a starting member that reaches no peer
	// waits before it takes itself to be alone and reports its view
	// settled.
	SettleTimeout time.Duration
}

// FastLAN is the default profile: a killed member is declared dead at every
// other member of a 3-5 node LAN in about 200-400 ms, while a suspicion
// only one member holds lasts 900 ms.
func FastLAN() Timers {
	return Timers{
		ProbeInterval:           50 * time.Millisecond,
		ProbeTimeout:            25 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 6,
		GossipInterval:          50 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		AwarenessMaxMultiplier:  4,
		TCPTimeout:              time.Second,
		PushPullInterval:        5 * time.Second,
		GossipToTheDeadTime:     5 * time.Second,
		RejoinInterval:          2 * time.Second,
		LeaveTimeout:            500 * time.Millisecond,
		SettleDelay:             200 * time.Millisecond,
		SettleTimeout:           3 * time.Second,
	}
}

// LAN is memberlist's own LAN profile (detection in several seconds), for
// networks where FastLAN flaps.
func LAN() Timers {
	c := memberlist.DefaultLANConfig()
	return Timers{
		ProbeInterval:           c.ProbeInterval,
		ProbeTimeout:            c.ProbeTimeout,
		IndirectChecks:          c.IndirectChecks,
		SuspicionMult:           c.SuspicionMult,
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult,
		GossipInterval:          c.GossipInterval,
		GossipNodes:             c.GossipNodes,
		RetransmitMult:          c.RetransmitMult,
		AwarenessMaxMultiplier:  c.AwarenessMaxMultiplier,
		TCPTimeout:              c.TCPTimeout,
		PushPullInterval:        c.PushPullInterval,
		GossipToTheDeadTime:     c.GossipToTheDeadTime,
		RejoinInterval:          10 * time.Second,
		LeaveTimeout:            2 * time.Second,
		SettleDelay:             2 * time.Second,
		SettleTimeout:           15 * time.Second,
	}
}

// Profiles are the named Timers a speaker may be started with
// (--memberlist-profile).
var Profiles = map[string]func() Timers{"fast-lan": FastLAN, "lan": LAN}

// Profile returns the Timers of a named profile.
func Profile(name string) (Timers, error) {
	p, ok := Profiles[name]
	if !ok {
		return Timers{}, fmt.Errorf("memberlist profile %q: want fast-lan or lan", name)
	}
	return p(), nil
}

// withDefaults fills zero fields from d.
func (t Timers) withDefaults(d Timers) Timers {
	def(&t.ProbeInterval, d.ProbeInterval)
	def(&t.ProbeTimeout, d.ProbeTimeout)
	def(&t.IndirectChecks, d.IndirectChecks)
	def(&t.SuspicionMult, d.SuspicionMult)
	def(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	def(&t.GossipInterval, d.GossipInterval)
	def(&t.GossipNodes, d.GossipNodes)
	def(&t.RetransmitMult, d.RetransmitMult)
	def(&t.AwarenessMaxMultiplier, d.AwarenessMaxMultiplier)
	def(&t.TCPTimeout, d.TCPTimeout)
	def(&t.PushPullInterval, d.PushPullInterval)
	def(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	def(&t.RejoinInterval, d.RejoinInterval)
	def(&t.LeaveTimeout, d.LeaveTimeout)
	def(&t.SettleDelay, d.SettleDelay)
	def(&t.SettleTimeout, d.SettleTimeout)
	return t
}

func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func (t Timers) validate() error {
	for _, d := range []time.Duration{t.ProbeInterval, t.ProbeTimeout, t.GossipInterval,
		t.TCPTimeout, t.PushPullInterval, t.GossipToTheDeadTime, t.RejoinInterval, t.LeaveTimeout, t.SettleDelay, t.SettleTimeout} {
		if d < 0 {
			return fmt.Errorf("timers: negative duration %s: %w", d, ErrInvalid)
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		return fmt.Errorf("timers: probe timeout %s must be shorter than probe interval %s: %w",
			t.ProbeTimeout, t.ProbeInterval, ErrInvalid)
	}
	for _, n := range []int{t.IndirectChecks, t.SuspicionMult, t.SuspicionMaxTimeoutMult, t.GossipNodes, t.RetransmitMult, t.AwarenessMaxMultiplier} {
		if n < 0 {
			return fmt.Errorf("timers: negative count %d: %w", n, ErrInvalid)
		}
	}
	return nil
}

// nameRE: a Kubernetes node name (DNS subdomain).
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

func (o *Options) validate() error {
	if !nameRE.MatchString(o.Name) {
		return fmt.Errorf("name %q: want a node name: %w", o.Name, ErrInvalid)
	}
	if !o.BindAddr.IsValid() || o.BindAddr.IsUnspecified() {
		return fmt.Errorf("bind address %v: want a node address: %w", o.BindAddr, ErrInvalid)
	}
	if o.BindPort < 0 || o.BindPort > 65535 {
		return fmt.Errorf("bind port %d: %w", o.BindPort, ErrInvalid)
	}
	if err := checkKey(o.SecretKey, o.Insecure); err != nil {
		return err
	}
	if err := checkSecondaryKeys(o.SecondaryKeys, o.SecretKey); err != nil {
		return err
	}
	if err := checkMeta(o.Meta); err != nil {
		return err
	}
	if _, err := parsePeers(o.Peers, o.BindPort); err != nil {
		return err
	}
	return o.Timers.validate()
}

func checkKey(key []byte, insecure bool) error {
	switch {
	case len(key) == 0 && insecure:
		return nil
	case len(key) == 0:
		return fmt.Errorf("secret key missing (set Insecure to run without one): %w", ErrInvalid)
	case insecure:
		return fmt.Errorf("both a secret key and Insecure: %w", ErrInvalid)
	case len(key) != 16 && len(key) != 24 && len(key) != 32:
		return fmt.Errorf("secret key of %d bytes: want 16, 24 or 32: %w", len(key), ErrInvalid)
	}
	return nil
}

func checkSecondaryKeys(keys [][]byte, primary []byte) error {
	if len(keys) > 0 && len(primary) == 0 {
		return fmt.Errorf("secondary keys without a secret key: %w", ErrInvalid)
	}
	for i, k := range keys {
		if len(k) != 16 && len(k) != 24 && len(k) != 32 {
			return fmt.Errorf("secondary key %d of %d bytes: want 16, 24 or 32: %w", i, len(k), ErrInvalid)
		}
	}
	return nil
}

func checkMeta(meta []byte) error {
	if len(meta) > memberlist.MetaMaxSize {
		return fmt.Errorf("meta of %d bytes: at most %d: %w", len(meta), memberlist.MetaMaxSize, ErrInvalid)
	}
	return nil
}

// parsePeers parses "addr" or "addr:port"; every bad entry is reported, the
// good ones are returned anyway.
func parsePeers(peers []string, port int) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(peers))
	var errs []error
	for _, p := range peers {
		if ap, err := netip.ParseAddrPort(p); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %q: want addr or addr:port: %w", p, ErrInvalid))
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
	}
	return out, errors.Join(errs...)
}
