package relay

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseListener reads a listener written as "name/PROTO/addr:port", for
// example "calls-udp/UDP/0.0.0.0:16384" (the standalone command line form).
func ParseListener(s string) (Listener, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return Listener{}, fmt.Errorf("listener %q: want name/PROTO/addr:port", s)
	}
	ap, err := netip.ParseAddrPort(parts[2])
	if err != nil {
		return Listener{}, fmt.Errorf("listener %q: %w", s, err)
	}
	l := Listener{Name: parts[0], Protocol: Protocol(strings.ToUpper(parts[1])), Addr: ap}
	if l.Protocol != TCP && l.Protocol != UDP {
		return Listener{}, fmt.Errorf("listener %q: protocol %q: want TCP or UDP", s, parts[1])
	}
	return l, nil
}

// ParseBackend reads a backend written as "name=addr" or "name=addr:port"
// (the port then serves every listener), for example "srv1=198.18.1.1".
func ParseBackend(s string) (Backend, error) {
	name, target, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Backend{}, fmt.Errorf("backend %q: want name=addr[:port]", s)
	}
	if ap, err := netip.ParseAddrPort(target); err == nil {
		return Backend{Name: name, Addr: ap.Addr(), DefaultPort: ap.Port()}, nil
	}
	a, err := netip.ParseAddr(target)
	if err != nil {
		return Backend{}, fmt.Errorf("backend %q: %w", s, err)
	}
	return Backend{Name: name, Addr: a}, nil
}
