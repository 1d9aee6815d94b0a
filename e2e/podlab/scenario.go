package podlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/e2e/echo"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/scenario"
)

// ScenarioSite is the pods cluster as the shared scenarios (e2e/scenario)
// see it: ARP watched from the router's segment interface, the nodes'
// eth1, FRR in the router's namespace, the calling servers' UDP port
// called from the client host.
type ScenarioSite struct {
	e   *Env
	frr *kubelab.FRR
}

var _ scenario.Site = (*ScenarioSite)(nil)

// ScenarioSite returns e as a scenario.Site whose router runs frr (nil:
// none, and VTYSH fails).
func (e *Env) ScenarioSite(frr *kubelab.FRR) *ScenarioSite { return &ScenarioSite{e: e, frr: frr} }

// Kube is the client that knows Pier's kinds.
func (s *ScenarioSite) Kube() client.Client { return s.e.Pier }

// ARPAnswers watches addr from the router for a second (ten requests) and
// returns every MAC that answered, as captured: arping alone reports only
// the first reply to each request.
func (s *ScenarioSite) ARPAnswers(ctx context.Context, addr netip.Addr) ([]string, error) {
	w, err := StartARPWatch(ctx, s.e.Site.Router, "eth1", addr)
	if err != nil {
		return nil, fmt.Errorf("watch ARP for %s: %w", addr, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return w.Stop().MACs, nil
}

// NodeMAC reads node's eth1 MAC.
func (s *ScenarioSite) NodeMAC(ctx context.Context, node string) (string, error) {
	for _, h := range s.e.Site.Nodes {
		if h.Name == node {
			out, err := h.Run(ctx, "cat", "/sys/class/net/eth1/address")
			return strings.ToLower(strings.TrimSpace(out)), err
		}
	}
	return "", fmt.Errorf("no node %s in the pods lab", node)
}

// VTYSH runs cmd in the router's FRR.
func (s *ScenarioSite) VTYSH(_ context.Context, cmd string) (string, error) {
	if s.frr == nil {
		return "", fmt.Errorf("no FRR on the router")
	}
	return s.frr.VTYSH(cmd)
}

// Reach sends one datagram from the client to the calling servers' UDP
// port at addr and returns the name the answering server gave.
func (s *ScenarioSite) Reach(ctx context.Context, addr netip.Addr) (string, error) {
	pc, err := s.e.Site.Client.ListenPacket("udp4", ":0")
	if err != nil {
		return "", err
	}
	defer pc.Close()
	dst := netip.AddrPortFrom(addr, CallUDPPort)
	deadline := time.Now().Add(time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := pc.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := pc.WriteTo([]byte("reach"), net.UDPAddrFromAddrPort(dst)); err != nil {
		return "", fmt.Errorf("send to %s: %w", dst, err)
	}
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return "", fmt.Errorf("no answer from %s: %w", dst, err)
	}
	w, err := echo.ParseWhoami(string(buf[:n]))
	return w.Name, err
}
