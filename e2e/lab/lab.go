// Package lab builds a real network out of Linux network namespaces: hosts
// are namespaces, links are veth pairs, L2 segments are bridges living in a
// switch namespace of their own. Every name carries a per-run prefix
// ("pier" and four hex digits), only documentation/benchmark address ranges
// are accepted, no namespace gets a route out of the lab, and Close (also run
// on SIGINT/SIGTERM) removes everything the lab made. Clean removes what
// earlier runs left behind.
package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/pier-lb/pier/e2e/teardown"
)

// Ranges are the only address ranges a lab uses (DESIGN.md's address plan).
var Ranges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),    // management
	netip.MustParsePrefix("198.51.100.0/24"), // L2 segment
	netip.MustParsePrefix("203.0.113.0/24"),  // BGP pool
	netip.MustParsePrefix("198.18.0.0/15"),   // client networks behind routers
	netip.MustParsePrefix("2001:db8::/32"),   // IPv6
}

// ErrOutsideLab is returned for an address or route outside Ranges.
var ErrOutsideLab = errors.New("outside the lab's address ranges")

var prefixRE = regexp.MustCompile(`^pier[0-9a-f]{4}$`)

// stateDir records which process owns which prefix, so Clean can tell
// leftovers from a lab that is still in use.
const stateDir = "/run/pier-lab"

// Options configures a lab. The zero value is valid.
type Options struct {
	// Prefix names everything the lab creates; default "pier" + 4 random
	// hex digits. It must match ^pier[0-9a-f]{4}$ so Clean can find it.
	Prefix string
	Logger *slog.Logger
}

// Lab owns a set of namespaces and links.
type Lab struct {
	Prefix string
	log    *slog.Logger

	mu         sync.Mutex
	hosts      []*Host
	switchHost *Host
	switches   map[string]*Switch
	mgmt       *management
	procs      []*Process
	closers    []io.Closer
	closed     bool
	unregister func()
	closeOnce  sync.Once
	closeErr   error
}

// New validates opts and prepares an empty lab. It creates nothing on the
// system until hosts or switches are added, but registers the lab for
// removal on SIGINT/SIGTERM.
func New(opts Options) (*Lab, error) {
	if opts.Prefix == "" {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		opts.Prefix = "pier" + hex.EncodeToString(b)
	}
	if !prefixRE.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("lab prefix %q: must match %s", opts.Prefix, prefixRE)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	if err := os.WriteFile(ownerFile(opts.Prefix), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	l := &Lab{
		Prefix:   opts.Prefix,
		log:      opts.Logger.With("component", "lab", "lab", opts.Prefix),
		switches: map[string]*Switch{},
	}
	l.unregister = teardown.Register(func() { _ = l.Close() })
	return l, nil
}

func ownerFile(prefix string) string { return filepath.Join(stateDir, prefix+".pid") }

// Close stops every process the lab started and removes every namespace,
// link and address it created. It is safe to call more than once and from
// several goroutines (a signal handler and main): every caller returns once
// the lab is gone.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	procs, closers, hosts := l.procs, l.closers, append([]*Host(nil), l.hosts...)
	if l.switchHost != nil {
		hosts = append(hosts, l.switchHost)
	}
	l.mu.Unlock()

	for _, c := range closers {
		c.Close()
	}
	for _, p := range procs {
		p.Stop()
	}
	var errs []error
	for _, h := range hosts {
		errs = append(errs, h.remove())
	}
	errs = append(errs, os.Remove(ownerFile(l.Prefix)))
	l.unregister()
	l.log.Info("lab removed")
	return errors.Join(ignoreNotExist(errs)...)
}

func ignoreNotExist(errs []error) []error {
	out := errs[:0]
	for _, err := range errs {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			out = append(out, err)
		}
	}
	return out
}

// inLab reports whether p lies inside the lab's ranges (link-local IPv6 is
// allowed too: every IPv6 interface has one).
func inLab(p netip.Prefix) bool {
	if p.Addr().IsLinkLocalUnicast() {
		return true
	}
	for _, r := range Ranges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func checkInLab(p netip.Prefix) error {
	if !inLab(p) {
		return fmt.Errorf("%s: %w", p, ErrOutsideLab)
	}
	return nil
}

func (l *Lab) addCloser(c io.Closer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, c)
}

func (l *Lab) track(p *Process) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.procs = append(l.procs, p)
}
