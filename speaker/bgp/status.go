package bgp

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// PeerStatus is one session's state.
type PeerStatus struct {
	Name    string
	Address netip.Addr
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string
	// Since is when State was entered (or the peer was added).
	Since time.Time
	// Uptime is how long the session has been Established (0 when not).
	Uptime time.Duration
	// PeerASN is the ASN the router last opened the session with (0
	// until it did).
	PeerASN uint32
	// PrefixesSent counts the prefixes gobgp sends the peer and
	// PrefixesReceived those the peer sent (0 when gobgp is not running).
	PrefixesSent, PrefixesReceived uint64
	// LastError is why the session last went down or failed to come up
	// (empty if it never did); while BFD holds the session down, that.
	LastError string
	// BFDState is the state of the peer's BFD session (Up, Down, Init,
	// AdminDown); empty without BFD.
	BFDState string
}

// Status reports every configured peer, sorted by name, and those that
// could not be configured on this node (Idle, LastError saying why).
func (a *Announcer) Status() []PeerStatus {
	counts := a.prefixCounts()
	a.sessions.mu.Lock()
	out := make([]PeerStatus, 0, len(a.sessions.byAddr))
	for addr, ss := range a.sessions.byAddr {
		c := counts[addr]
		st := PeerStatus{Name: ss.name, Address: ss.addr, State: stateName(ss.state), Since: ss.since,
			PrefixesSent: c[0], PrefixesReceived: c[1], LastError: ss.lastErr, BFDState: ss.bfd,
			PeerASN: ss.peerAS}
		if ss.bfdHeld != "" {
			st.LastError = ss.bfdHeld
		}
		if ss.state == api.PeerState_ESTABLISHED {
			st.Uptime = a.opts.Clock.Since(ss.up)
		}
		out = append(out, st)
	}
	for _, st := range a.sessions.notAdded {
		out = append(out, st)
	}
	a.sessions.mu.Unlock()
	slices.SortFunc(out, func(x, y PeerStatus) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// prefixCounts asks gobgp how many prefixes it sends each peer and has
// received from it.
func (a *Announcer) prefixCounts() map[string][2]uint64 {
	out := map[string][2]uint64{}
	select {
	case <-a.ready:
	default:
		return out
	}
	select {
	case <-a.done:
		return out
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr := addrKey(p.GetConf().GetNeighborAddress())
		c := out[addr]
		for _, af := range p.GetAfiSafis() {
			c[0] += af.GetState().GetAdvertised()
			c[1] += af.GetState().GetReceived()
		}
		out[addr] = c
	})
	return out
}
