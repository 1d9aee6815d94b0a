package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"k8s.io/utils/clock"
)

// Options configures an Announcer.
// lastASN is reserved (RFC 7300): no router opens a session with it.
const lastASN = 4294967295

type Options struct {
	// RouterID is the BGP identifier, an IPv4 address (required).
	RouterID netip.Addr
	// ASN is gobgp's global AS number; each peer's MyASN overrides it on
	// its session. Default lastASN, which no router may use: gobgp
	// classifies a session with a dynamic ASN (Peer.PeerASN 0) as iBGP
	// when the router's ASN equals this one, not the peer's MyASN, so any
	// ASN a router may have would turn such an eBGP session into iBGP.
	ASN uint32
	// ListenPort is the port gobgp accepts sessions on; default -1 (no
	// listener: the speaker dials out only). 0 means -1.
	ListenPort int32
	// Logger receives the announcer's and gobgp's logs; default: discard.
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// WarnAfter is how long a peer may stay unestablished before the
	// announcer logs a warning about it; default 30s.
	WarnAfter time.Duration
	// StopTimeout bounds the withdraw-then-close sequence when Run's
	// context ends; default 3s.
	StopTimeout time.Duration
	// Clock times the sessions (PeerStatus.Since and Uptime, WarnAfter);
	// default the wall clock.
	Clock clock.WithTicker
}

// Sentinel errors.
var (
	ErrInvalid         = errors.New("invalid bgp setting")
	ErrDuplicatePrefix = errors.New("prefix announced twice")
	ErrStopped         = errors.New("announcer stopped")
)

func (o *Options) validate() error {
	if !o.RouterID.Is4() || o.RouterID.IsUnspecified() {
		return fmt.Errorf("router id %v: want a non-zero IPv4 address: %w", o.RouterID, ErrInvalid)
	}
	if o.ListenPort == 0 {
		o.ListenPort = -1
	}
	if o.ListenPort < -1 || o.ListenPort > 65535 {
		return fmt.Errorf("listen port %d: %w", o.ListenPort, ErrInvalid)
	}
	if o.ASN == 0 {
		o.ASN = lastASN
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WarnAfter <= 0 {
		o.WarnAfter = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 3 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return nil
}
