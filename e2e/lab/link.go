package lab

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
)

// Switch is an L2 segment: a Linux bridge inside the lab's switch namespace.
type Switch struct {
	Name  string
	lab   *Lab
	ports int
}

// AddSwitch creates an L2 segment.
func (l *Lab) AddSwitch(name string) (*Switch, error) {
	sh, err := l.switchNamespace()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.switches[name]; ok {
		return nil, fmt.Errorf("switch %q exists", name)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := sh.nl.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s: %w", name, err)
	}
	if err := sh.nl.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("bring up bridge %s: %w", name, err)
	}
	sw := &Switch{Name: name, lab: l}
	l.switches[name] = sw
	return sw, nil
}

func (l *Lab) switchNamespace() (*Host, error) {
	l.mu.Lock()
	sh := l.switchHost
	l.mu.Unlock()
	if sh != nil {
		return sh, nil
	}
	sh, err := l.newHost("switch")
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.switchHost = sh
	l.mu.Unlock()
	return sh, nil
}

// Connect plugs a new interface of h, named iface, into the switch and puts
// the given addresses on it.
func (sw *Switch) Connect(h *Host, iface string, addrs ...netip.Prefix) error {
	l := sw.lab
	l.mu.Lock()
	sh := l.switchHost
	sw.ports++
	port := sw.Name + "p" + strconv.Itoa(sw.ports)
	l.mu.Unlock()
	if len(port) > 15 {
		return fmt.Errorf("switch %s: name too long for port %s", sw.Name, port)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port},
		PeerName:      iface,
		PeerNamespace: netlink.NsFd(int(h.ns)),
	}
	if err := sh.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("connect %s/%s to switch %s: %w", h.Name, iface, sw.Name, err)
	}
	br, err := sh.nl.LinkByName(sw.Name)
	if err == nil {
		err = sh.nl.LinkSetMaster(veth, br)
	}
	if err == nil {
		err = sh.nl.LinkSetUp(veth)
	}
	if err != nil {
		return fmt.Errorf("attach %s to switch %s: %w", port, sw.Name, err)
	}
	return h.configure(iface, addrs)
}

// ConnectHosts links two hosts point to point with a veth pair.
func (l *Lab) ConnectHosts(a *Host, aIface string, b *Host, bIface string) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aIface},
		PeerName:      bIface,
		PeerNamespace: netlink.NsFd(int(b.ns)),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("link %s/%s to %s/%s: %w", a.Name, aIface, b.Name, bIface, err)
	}
	if err := a.configure(aIface, nil); err != nil {
		return err
	}
	return b.configure(bIface, nil)
}

func (h *Host) configure(iface string, addrs []netip.Prefix) error {
	for _, a := range addrs {
		if err := h.AddAddr(iface, a); err != nil {
			return err
		}
	}
	return h.SetLink(iface, true)
}

// Links lists the host's interface names.
func (h *Host) Links() ([]string, error) {
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", h.Name, err)
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Attrs().Name
	}
	return names, nil
}
