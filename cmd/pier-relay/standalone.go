package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/relay"
	"github.com/pier-lb/pier/relay/agent"
)

// standaloneFlags are standalone mode's flags: the listeners and backends,
// and a configuration checked by config.StandaloneRelay as a Relay's spec
// would be.
type standaloneFlags struct {
	listens, backends repeated
	token             string
	cfg               config.Relay
}

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func (f *standaloneFlags) register(fs *flag.FlagSet) {
	s := &f.cfg.Settings
	fs.Var(&f.listens, "listen", "standalone listener name/PROTO/addr:port (repeat)")
	fs.Var(&f.backends, "backend", "standalone backend name=addr[:port] (repeat)")
	fs.BoolVar(&f.cfg.Backend.ProxyProtocol, "proxy-protocol", false, "standalone: send PROXY protocol v2 to every backend")
	fs.Func("health-port", "standalone: TCP port of the backends' active check (default: the first TCP listener's)", func(v string) error {
		p, err := strconv.ParseUint(v, 10, 16)
		f.cfg.Backend.HealthCheckPort = uint16(p)
		return err
	})
	fs.BoolVar(&s.KeyByAddressOnly, "key-by-address", false, "standalone: hash the client address only, not its port")
	fs.IntVar(&s.MaxFlows, "max-flows", relay.DefaultMaxFlows, "standalone: UDP flows per listener")
	fs.IntVar(&s.MaxTCPConns, "max-tcp-conns", relay.DefaultMaxTCPConns, "standalone: connections per TCP listener")
	fs.IntVar(&s.MaxTCPConnsPerSource, "max-tcp-conns-per-source", relay.DefaultMaxTCPConnsPerSource, "standalone: connections per TCP listener from one client address (IPv6: one /64)")
	fs.DurationVar(&s.UDPIdleTimeout, "udp-idle", relay.DefaultUDPIdleTimeout, "standalone: UDP flow idle timeout")
	fs.DurationVar(&s.DrainTimeout, "drain", relay.DefaultDrainTimeout, "standalone: how long TCP flows may finish after SIGTERM")
	fs.BoolVar(&s.Kernel, "kernel", false, "standalone: UDP flows through the kernel data path (nftables DNAT; needs NET_ADMIN); not with --token")
	fs.StringVar(&f.token, "token", "", "standalone: routing token offset:length, the bytes of a flow's first datagram or first TCP bytes naming its backend (off by default)")
}

// options are the relay options the flags ask for, once config accepts
// them; the caller adds metrics, logger and the kernel's tables.
func (f *standaloneFlags) options() (relay.Options, error) {
	c := f.cfg
	for _, s := range f.listens {
		l, err := relay.ParseListener(s)
		if err != nil {
			return relay.Options{}, fmt.Errorf("--listen: %w", err)
		}
		c.Listeners = append(c.Listeners, config.RelayListener{
			Name: l.Name, Protocol: corev1.Protocol(l.Protocol), Addr: l.Addr.Addr(), Port: l.Addr.Port(),
		})
	}
	if f.token != "" {
		t, err := relay.ParseToken(f.token)
		if err != nil {
			return relay.Options{}, fmt.Errorf("--token: %w", err)
		}
		c.Token = config.RelayToken{Offset: t.Offset, Length: t.Length}
	}
	c, problems := config.StandaloneRelay(c)
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return relay.Options{}, errors.Join(errs...)
	}
	var backends []relay.Backend
	for _, s := range f.backends {
		b, err := relay.ParseBackend(s)
		if err != nil {
			return relay.Options{}, fmt.Errorf("--backend: %w", err)
		}
		b.ProxyProtocol, b.HealthPort = c.Backend.ProxyProtocol, c.Backend.HealthCheckPort
		backends = append(backends, b)
	}
	// Every standalone listener names its address: no bind address.
	return agent.ConfigOf(c, netip.Addr{}).RelayOptions(backends), nil
}
