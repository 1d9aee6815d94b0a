package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	xipv6 "golang.org/x/net/ipv6"
)

// sock is one responder's sockets on one interface: a packet socket that
// reads requests and writes every answer and announcement as a whole
// Ethernet frame, and, for IPv6, an ICMPv6 socket that only holds the
// solicited-node multicast memberships (so the NIC and MLD-snooping
// switches deliver the solicitations); it reads nothing.
type sock struct {
	conn  *packet.Conn
	group *ndp.Conn
	mac   net.HardwareAddr
	mtu   int
}

// openSock opens k's sockets in the calling thread's network namespace.
func openSock(k linkKey) (*sock, error) {
	ifi, err := net.InterfaceByName(k.iface)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInterface, err)
	}
	switch {
	case ifi.Flags&net.FlagUp == 0:
		return nil, fmt.Errorf("%w: down", ErrInterface)
	case len(ifi.HardwareAddr) != 6:
		return nil, fmt.Errorf("%w: not Ethernet", ErrInterface)
	}
	s := &sock{mac: ifi.HardwareAddr, mtu: ifi.MTU}
	proto, filter := etherTypeARP, arpFilter
	if k.fam == ipv6 {
		proto, filter = etherTypeIPv6, nsFilter
	}
	if s.conn, err = packet.Listen(ifi, packet.Raw, proto, &packet.Config{Filter: filter}); err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	if k.fam == ipv6 {
		if err := s.openGroup(ifi); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *sock) openGroup(ifi *net.Interface) error {
	c, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return fmt.Errorf("open ICMPv6 socket: %w", err)
	}
	var f xipv6.ICMPFilter
	f.SetAll(true) // block everything: the packet socket reads
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return fmt.Errorf("filter ICMPv6 socket: %w", err)
	}
	s.group = c
	return nil
}

// join and leave manage solicited-node group memberships (IPv6 only).
func (s *sock) join(group netip.Addr) error {
	if s.group == nil {
		return nil
	}
	return s.group.JoinGroup(group)
}

func (s *sock) leave(group netip.Addr) error {
	if s.group == nil {
		return nil
	}
	return s.group.LeaveGroup(group)
}

func (s *sock) write(frame []byte, dst net.HardwareAddr) error {
	_, err := s.conn.WriteTo(frame, &packet.Addr{HardwareAddr: dst})
	return err
}

func (s *sock) close() {
	err := s.conn.Close()
	if s.group != nil {
		err = errors.Join(err, s.group.Close())
	}
	_ = err // closing only releases; nothing to do about a failure
}
