package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one network namespace: a node, a router, a client or a switch.
type Host struct {
	// Name is the lab-local name ("node1"); NS is the namespace's name
	// ("pier1a2b-node1"), as `ip netns` shows it.
	Name, NS string

	lab *Lab
	ns  netns.NsHandle
	nl  *netlink.Handle
}

// AddHost creates a namespace with loopback up, IPv6 duplicate address
// detection off (addresses are usable at once) and no routes.
func (l *Lab) AddHost(name string) (*Host, error) {
	h, err := l.newHost(name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

func (l *Lab) newHost(name string) (*Host, error) {
	if name == "" || strings.ContainsAny(name, "/ ") {
		return nil, fmt.Errorf("host name %q: want a short word", name)
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errors.New("lab closed")
	}
	h := &Host{Name: name, NS: l.Prefix + "-" + name, lab: l}
	if out, err := exec.Command("ip", "netns", "add", h.NS).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("add namespace %s: %v: %s", h.NS, err, out)
	}
	if err := h.open(); err != nil {
		_ = h.remove()
		return nil, err
	}
	l.log.Debug("host added", "host", name, "ns", h.NS)
	return h, nil
}

func (h *Host) open() error {
	var err error
	if h.ns, err = netns.GetFromName(h.NS); err != nil {
		return fmt.Errorf("open namespace %s: %w", h.NS, err)
	}
	if h.nl, err = netlink.NewHandleAt(h.ns); err != nil {
		return fmt.Errorf("netlink in %s: %w", h.NS, err)
	}
	for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := h.Sysctl(key, "0"); err != nil {
			return err
		}
	}
	return h.SetLink("lo", true)
}

// remove kills every process still in the namespace (including daemons that
// forked away from the lab's Process) and deletes it.
func (h *Host) remove() error {
	if h.nl != nil {
		h.nl.Close()
	}
	if h.ns.IsOpen() {
		h.ns.Close()
	}
	return removeNamespace(h.NS)
}

func removeNamespace(ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
		return nil
	}
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("delete namespace %s: %v: %s", ns, err, out)
	}
	return nil
}

// Do runs fn on an OS thread switched into the host's namespace: sockets fn
// opens belong to the host. The thread is thrown away if it cannot be
// switched back.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return // the goroutine exits locked; the runtime drops the thread
		}
		defer orig.Close()
		if err := netns.Set(h.ns); err != nil {
			errc <- fmt.Errorf("enter %s: %w", h.NS, err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("leave %s: %w", h.NS, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Sysctl writes one /proc/sys key inside the host's namespace.
func (h *Host) Sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := h.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, h.NS, err)
	}
	return nil
}

// EnableForwarding makes the host route IPv4 and IPv6 between its links.
func (h *Host) EnableForwarding() error {
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := h.Sysctl(k, "1"); err != nil {
			return err
		}
	}
	return nil
}

// AddAddr puts an address (with its prefix length) on an interface.
func (h *Host) AddAddr(iface string, p netip.Prefix) error {
	if err := checkInLab(p); err != nil {
		return fmt.Errorf("add %s on %s in %s: %w", p, iface, h.Name, err)
	}
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("add %s on %s in %s: %w", p, iface, h.Name, err)
	}
	addr := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.nl.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add %s on %s in %s: %w", p, iface, h.Name, err)
	}
	return nil
}

// LinkLocal is the interface's IPv6 link-local address, the kernel's own
// (from the MAC address) once its duplicate address detection is done;
// an error while it has none.
func (h *Host) LinkLocal(iface string) (netip.Addr, error) {
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("link-local address of %s in %s: %w", iface, h.Name, err)
	}
	addrs, err := h.nl.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("link-local address of %s in %s: %w", iface, h.Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ok && ip.IsLinkLocalUnicast() && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no usable link-local address on %s in %s yet", iface, h.Name)
}

// AddRoute routes dst via a gateway. Both must be inside the lab: a default
// route or any route out of the lab is refused.
func (h *Host) AddRoute(dst netip.Prefix, via netip.Addr) error {
	if err := checkInLab(dst); err != nil {
		return fmt.Errorf("route %s in %s: %w", dst, h.Name, err)
	}
	if err := checkInLab(netip.PrefixFrom(via, via.BitLen())); err != nil {
		return fmt.Errorf("route %s via %s in %s: %w", dst, via, h.Name, err)
	}
	r := &netlink.Route{Dst: ipNet(dst.Masked()), Gw: net.IP(via.AsSlice())}
	if err := h.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("route %s via %s in %s: %w", dst, via, h.Name, err)
	}
	return nil
}

// SetLink brings an interface up or down.
func (h *Host) SetLink(iface string, up bool) error {
	link, err := h.nl.LinkByName(iface)
	if err == nil {
		if up {
			err = h.nl.LinkSetUp(link)
		} else {
			err = h.nl.LinkSetDown(link)
		}
	}
	if err != nil {
		return fmt.Errorf("set %s up=%t in %s: %w", iface, up, h.Name, err)
	}
	return nil
}

// TxBytes is the number of bytes the interface has sent.
func (h *Host) TxBytes(iface string) (uint64, error) {
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return 0, fmt.Errorf("read %s counters in %s: %w", iface, h.Name, err)
	}
	if link.Attrs().Statistics == nil {
		return 0, fmt.Errorf("read %s counters in %s: no statistics", iface, h.Name)
	}
	return link.Attrs().Statistics.TxBytes, nil
}

// Dial connects from inside the host.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a stream listener inside the host.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a datagram socket inside the host.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
