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
	// Uptime is how long the session has been Established (0 when not).
	Uptime time.Duration
	// PrefixesSent counts the prefixes gobgp sends the peer (0 when gobgp
	// is not running).
	PrefixesSent uint64
}

// Status reports every configured peer, sorted by name.
func (a *Announcer) Status() []PeerStatus {
	sent := a.sentCounts()
	a.sessions.mu.Lock()
	out := make([]PeerStatus, 0, len(a.sessions.byAddr))
	for addr, ss := range a.sessions.byAddr {
		st := PeerStatus{Name: ss.name, Address: ss.addr, State: stateName(ss.state), PrefixesSent: sent[addr]}
		if ss.state == api.PeerState_ESTABLISHED {
			st.Uptime = time.Since(ss.up)
		}
		out = append(out, st)
	}
	a.sessions.mu.Unlock()
	slices.SortFunc(out, func(x, y PeerStatus) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// sentCounts asks gobgp how many prefixes it sends each peer.
func (a *Announcer) sentCounts() map[string]uint64 {
	out := map[string]uint64{}
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
		for _, af := range p.GetAfiSafis() {
			out[p.GetConf().GetNeighborAddress()] += af.GetState().GetAdvertised()
		}
	})
	return out
}
