package bgp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
)

// SetPeers makes the sessions equal to peers: new peers are added, missing
// ones deleted (with a Cease), and a peer whose own settings changed is
// reset; other sessions are not touched.
func (a *Announcer) SetPeers(ctx context.Context, peers []Peer) error {
	want, err := normalizePeers(peers)
	if err != nil {
		return err
	}
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.mu.Unlock()
	var errs []error
	for name, old := range a.peers {
		if p, ok := want[name]; !ok || !samePeer(old, p) {
			errs = append(errs, a.removePeer(ctx, old, ok))
		}
	}
	readded := map[string]bool{}
	notAdded := map[string]PeerStatus{}
	for name, p := range want {
		if _, ok := a.peers[name]; ok {
			a.peers[name].BFD = p.BFD
			continue
		}
		readded[name] = true
		if err := a.addPeer(ctx, p); err != nil {
			errs = append(errs, err)
			notAdded[name] = PeerStatus{Name: name, Address: p.Address, State: "Idle",
				Since: a.opts.Clock.Now(), LastError: "not configured on this node: " + err.Error()}
		}
	}
	a.sessions.setNotAdded(notAdded)
	a.bfd.sync(a.peers, readded)
	return errors.Join(errs...)
}

func (a *Announcer) addPeer(ctx context.Context, p *Peer) error {
	set := map[netip.Prefix]bool{}
	var prefixes []netip.Prefix
	for pfx, path := range a.paths {
		if path.goesTo(p.Name) {
			set[pfx] = true
			prefixes = append(prefixes, pfx)
		}
	}
	local, err := p.localLinkLocal()
	if err != nil {
		return fmt.Errorf("add peer %s: %w", p.Address, err)
	}
	if err := addPeerPolicy(ctx, a.srv, p, local, prefixes); err != nil {
		return fmt.Errorf("add peer %s: %w", p.Address, err)
	}
	a.glog.addSecret(p.Password)
	a.sessions.add(p)
	if err := a.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p.apiPeer()}); err != nil {
		a.sessions.remove(p)
		a.glog.removeSecret(p.Password)
		_ = deletePeerPolicy(ctx, a.srv, p.Name)
		return fmt.Errorf("add peer %s: %w", p.Address, err)
	}
	a.peers[p.Name] = p
	a.sets[p.Name] = set
	a.log.Info("peer added", "peer", p.Name, "addr", p.Address, "asn", p.PeerASN,
		"my_asn", p.MyASN, "md5", p.Password != "", "prefixes", len(prefixes),
		"next_hop_v4", p.NextHop4, "next_hop_v6", p.NextHop6)
	a.warnNoNextHop(p)
	return nil
}

// warnNoNextHop says when the peer carries a family it gets no paths of
// for want of a next hop of that family.
func (a *Announcer) warnNoNextHop(p *Peer) {
	for _, v6 := range []bool{false, true} {
		f := IPv4Unicast
		if v6 {
			f = IPv6Unicast
		}
		if _, send := p.ExportNextHop(v6); !send && p.carries(f) {
			a.log.Warn("peer carries "+string(f)+" over a session of the other family, but no next hop of that family is set "+
				"(the node has no such address?): no paths of that family go to it", "peer", p.Name, "addr", p.Address)
		}
	}
}

// removePeer deletes the session and the peer's policy; changed says the
// peer is about to come back with other settings.
func (a *Announcer) removePeer(ctx context.Context, p *Peer, changed bool) error {
	if err := a.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
		return fmt.Errorf("delete peer %s: %w", p.Address, err)
	}
	delete(a.peers, p.Name)
	delete(a.sets, p.Name)
	a.sessions.remove(p)
	a.glog.removeSecret(p.Password)
	if err := deletePeerPolicy(ctx, a.srv, p.Name); err != nil {
		return fmt.Errorf("delete peer %s: %w", p.Address, err)
	}
	msg := "peer removed"
	if changed {
		msg = "peer settings changed; resetting the session"
	}
	a.log.Info(msg, "peer", p.Name, "addr", p.Address)
	return nil
}

// localLinkLocal is the local address of a link-local session:
// SourceAddress, or the first link-local address of the interface, the
// one gobgp binds the session to when given none. Zero for other peers.
func (p *Peer) localLinkLocal() (netip.Addr, error) {
	iface := p.Address.Zone()
	switch {
	case iface == "":
		return netip.Addr{}, nil
	case p.SourceAddress.IsValid():
		return p.SourceAddress.WithZone(""), nil
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", iface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", iface, err)
	}
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil && linkLocal6(pfx.Addr()) {
			return pfx.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv6 link-local address", iface)
}
