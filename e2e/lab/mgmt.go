package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The management network joins node namespaces to the control plane. It is a
// switch of the lab's own with a "mgmt" host at 192.0.2.1; nothing of it
// lives in the root namespace, whose real interfaces may use any range
// (192.0.2.0/24 among them). A control plane running in the root namespace
// is published on the management network by an in-process TCP forwarder
// (PublishToManagement), so every lab can use the same addresses and any
// number of labs can run at once.
var (
	MgmtSubnet  = netip.MustParsePrefix("192.0.2.0/24")
	MgmtGateway = netip.MustParseAddr("192.0.2.1")
)

type management struct {
	sw   *Switch
	host *Host
	next netip.Addr
}

// Gateway returns the management network's control-plane address, creating
// the network on first use.
func (l *Lab) Gateway() (netip.Addr, error) {
	if _, err := l.management(); err != nil {
		return netip.Addr{}, err
	}
	return MgmtGateway, nil
}

// AttachManagement gives h an interface "mgmt0" on the management network and
// returns its address. The host gets no route beyond the management subnet.
func (l *Lab) AttachManagement(h *Host) (netip.Addr, error) {
	m, err := l.management()
	if err != nil {
		return netip.Addr{}, err
	}
	l.mu.Lock()
	addr := m.next
	m.next = addr.Next()
	l.mu.Unlock()
	if !MgmtSubnet.Contains(addr.Next()) {
		return netip.Addr{}, fmt.Errorf("management network %s is full", MgmtSubnet)
	}
	if err := m.sw.Connect(h, "mgmt0", netip.PrefixFrom(addr, MgmtSubnet.Bits())); err != nil {
		return netip.Addr{}, err
	}
	return addr, nil
}

func (l *Lab) management() (*management, error) {
	l.mu.Lock()
	m := l.mgmt
	l.mu.Unlock()
	if m != nil {
		return m, nil
	}
	sw, err := l.AddSwitch("mgmt")
	if err != nil {
		return nil, err
	}
	h, err := l.AddHost("mgmt")
	if err != nil {
		return nil, err
	}
	if err := sw.Connect(h, "eth0", netip.PrefixFrom(MgmtGateway, MgmtSubnet.Bits())); err != nil {
		return nil, err
	}
	m = &management{sw: sw, host: h, next: netip.AddrFrom4([4]byte{192, 0, 2, 11})}
	l.mu.Lock()
	l.mgmt = m
	l.mu.Unlock()
	return m, nil
}

// PublishToManagement listens on the management gateway at port and forwards
// each connection to target, an address in the root namespace (a control
// plane on loopback). It returns the published address; the forwarder stops
// when the lab closes.
func (l *Lab) PublishToManagement(port uint16, target string) (netip.AddrPort, error) {
	m, err := l.management()
	if err != nil {
		return netip.AddrPort{}, err
	}
	at := netip.AddrPortFrom(MgmtGateway, port)
	ln, err := m.host.Listen("tcp", at.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("publish %s on %s: %w", target, at, err)
	}
	l.addCloser(ln)
	go forward(ln, target)
	l.log.Info("published on management network", "addr", at, "target", target)
	return at, nil
}

// ManagementHost is the host at the management gateway (192.0.2.1), where
// the control plane is published, created on first use. Connections the
// control plane makes into the lab (webhooks, kubelets) are dialed from it.
func (l *Lab) ManagementHost() (*Host, error) {
	m, err := l.management()
	if err != nil {
		return nil, err
	}
	return m.host, nil
}

func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			up, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
			cancel()
			if err != nil {
				return
			}
			defer up.Close()
			splice(c, up)
		}()
	}
}

// splice copies both ways until either side closes.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok && err == nil {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
}
