package members

import (
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// nsTransport is memberlist's UDP+TCP transport with every socket it creates
// made inside the right network namespace: the listeners when it is built,
// and each outgoing TCP connection (join, push/pull, fallback ping). UDP
// packets leave through the bound listener, so they need nothing.
//
// memberlist does not wait for its probe goroutines on Shutdown; closing
// makes sure no dial runs, or starts, once Shutdown has returned.
type nsTransport struct {
	*memberlist.NetTransport
	inNS func(func() error) error

	mu     sync.RWMutex
	closed bool
}

var _ memberlist.NodeAwareTransport = (*nsTransport)(nil)

func newTransport(bind string, port int, logger *log.Logger, inNS func(func() error) error) (*nsTransport, error) {
	t := &nsTransport{inNS: inNS}
	err := inNS(func() (err error) {
		t.NetTransport, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{bind},
			BindPort:  port,
			Logger:    logger,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s port %d: %w", bind, port, err)
	}
	return t, nil
}

// DialTimeout implements memberlist.Transport.
func (t *nsTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *nsTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return nil, errShutdown
	}
	var c net.Conn
	err := t.inNS(func() (err error) {
		c, err = t.NetTransport.DialAddressTimeout(a, timeout)
		return err
	})
	return c, err
}

var errShutdown = errors.New("transport shut down")

// Shutdown implements memberlist.Transport.
func (t *nsTransport) Shutdown() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return t.NetTransport.Shutdown()
}
