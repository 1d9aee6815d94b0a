package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// labelSuffix marks the IPv4 addresses VIPs adds ("lo:pier").
const labelSuffix = ":pier"

// maxLabel is the longest IPv4 label the kernel keeps (IFNAMSIZ-1).
const maxLabel = unix.IFNAMSIZ - 1

// Netlink is the part of *netlink.Handle VIPs uses. A handle opened with
// netlink.NewHandleAt works on another network namespace.
type Netlink interface {
	LinkByName(name string) (netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
}

// Options configures VIPs. The zero value is valid.
type Options struct {
	// Link is the interface the addresses go on; default "lo". At most
	// 10 characters, so that the IPv4 label "<link>:pier" fits.
	Link string
	// Logger receives one line per change; default discards.
	Logger *slog.Logger
	// Netlink talks to the kernel; default a handle on the network
	// namespace of the calling thread, opening a socket per request.
	Netlink Netlink
	// Sysctl writes one key (dotted, "net.ipv4.conf.all.arp_ignore");
	// default writes /proc/sys.
	Sysctl func(key, value string) error
	// StateFile, if set, records the addresses VIPs added, so that a
	// restarted speaker removes stale ones it added before. An absolute
	// path on storage that outlives the process, e.g. a hostPath.
	StateFile string
	// Metrics receives counts; default unregistered metrics.
	Metrics *Metrics
}

// VIPs keeps a set of addresses on one link. Safe for concurrent use.
type VIPs struct {
	link  string
	label string
	state string
	nl    Netlink
	sysct func(key, value string) error
	log   *slog.Logger
	m     *Metrics

	mu     sync.Mutex
	loaded bool         // state file read
	owned  []netip.Addr // sorted; what we added and still hold
	saved  []netip.Addr // sorted; what the state file holds
	// stateErr is the last state-file write error, "" once written.
	stateErr string
}

// New validates opts. It touches neither the link nor the state file.
func New(opts Options) (*VIPs, error) {
	if opts.Link == "" {
		opts.Link = "lo"
	}
	label := opts.Link + labelSuffix
	if len(label) > maxLabel || !validLinkName(opts.Link) {
		return nil, fmt.Errorf("vip: link %q: want an interface name of at most %d characters", opts.Link, maxLabel-len(labelSuffix))
	}
	if opts.StateFile != "" && !filepath.IsAbs(opts.StateFile) {
		return nil, fmt.Errorf("vip: state file %q: want an absolute path", opts.StateFile)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Netlink == nil {
		opts.Netlink = &netlink.Handle{}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Sysctl == nil {
		opts.Sysctl = writeProcSys
	}
	if opts.StateFile != "" {
		opts.StateFile = filepath.Clean(opts.StateFile)
	}
	return &VIPs{
		link:  opts.Link,
		label: label,
		state: opts.StateFile,
		nl:    opts.Netlink,
		sysct: opts.Sysctl,
		log:   opts.Logger.With("component", "vip", "iface", opts.Link),
		m:     opts.Metrics,
	}, nil
}

// validLinkName rejects what the kernel refuses in an interface name, and
// ':' (reserved for the label).
func validLinkName(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return false
		}
	}
	return true
}

// Current returns the addresses VIPs added and holds now, sorted. Wanted
// addresses that someone else had already put on the link are not among
// them.
func (v *VIPs) Current() []netip.Addr {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.owned)
}

// Set makes the link hold addrs: it adds the missing ones (as /32 or /128)
// and removes those it added earlier that are no longer wanted. It never
// removes an address it did not add. Calling it again with the same addrs
// changes nothing. Failures are joined, one per address, and do not stop the
// work on the others; a failed change is retried by the next Set. A state
// file that cannot be written is no failure of Set: it is logged once per
// distinct error and counted (pier_vip_errors_total{op="state"}).
func (v *VIPs) Set(ctx context.Context, addrs []netip.Addr) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	want, errs := wanted(addrs, v.link)
	errs = append(errs, v.load())
	link, onLink, err := v.inspect()
	if err != nil {
		v.m.failed(opList, err)
		return errors.Join(append(errs, err)...)
	}
	v.forgetGone(onLink)
	c := plan(want, v.owned, onLink)
	for _, a := range c.foreign {
		v.log.Debug("address already on link, not managed", "addr", a)
	}
	if !c.empty() {
		v.save(union(v.owned, c.add))
		errs = append(errs, v.apply(ctx, link, c)...)
	}
	v.save(v.owned)
	v.m.hold(v.owned)
	return errors.Join(errs...)
}

// load reads the state file once.
func (v *VIPs) load() error {
	if v.loaded || v.state == "" {
		v.loaded = true
		return nil
	}
	v.loaded = true
	addrs, err := readState(v.state)
	if err != nil {
		v.log.Warn("state unreadable, starting empty", "file", v.state, "err", err)
		v.m.failed(opState, err)
		return err
	}
	v.owned, v.saved = addrs, slices.Clone(addrs)
	return nil
}

// inspect finds the link and what it holds, keyed by address.
func (v *VIPs) inspect() (netlink.Link, map[netip.Addr]found, error) {
	link, err := v.nl.LinkByName(v.link)
	if err != nil {
		return nil, nil, fmt.Errorf("find link %s: %w", v.link, err)
	}
	list, err := v.list(link)
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses on %s: %w", v.link, err)
	}
	return link, index(list), nil
}

// list reads the link's addresses, retrying a dump the kernel interrupted.
func (v *VIPs) list(link netlink.Link) ([]netlink.Addr, error) {
	var err error
	for range 5 {
		var list []netlink.Addr
		list, err = v.nl.AddrList(link, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return nil, err
}

func index(list []netlink.Addr) map[netip.Addr]found {
	m := make(map[netip.Addr]found, len(list))
	for _, la := range list {
		if la.IPNet == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(la.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		ones, _ := la.Mask.Size()
		f := m[a]
		if ones == a.BitLen() && !f.host {
			f = found{host: true, label: la.Label}
		}
		m[a] = f
	}
	return m
}

// forgetGone drops recorded addresses that are no longer ours on the link.
func (v *VIPs) forgetGone(onLink map[netip.Addr]found) {
	kept, gone := held(v.owned, onLink, v.label)
	for _, a := range gone {
		v.log.Info("address no longer on link as added, forgetting it", "addr", a)
	}
	v.owned = kept
}

// apply removes, then adds, each address on its own.
func (v *VIPs) apply(ctx context.Context, link netlink.Link, c change) []error {
	var errs []error
	for _, a := range c.remove {
		if err := ctx.Err(); err != nil {
			return append(errs, fmt.Errorf("remove %s from %s: %w", a, v.link, err))
		}
		errs = append(errs, v.remove(link, a))
	}
	for _, a := range c.add {
		if err := ctx.Err(); err != nil {
			return append(errs, fmt.Errorf("add %s on %s: %w", a, v.link, err))
		}
		errs = append(errs, v.add(link, a))
	}
	return errs
}

func (v *VIPs) add(link netlink.Link, a netip.Addr) error {
	err := v.nl.AddrAdd(link, v.nlAddr(a))
	if errors.Is(err, unix.EEXIST) {
		v.log.Info("address appeared on link meanwhile, not managed", "addr", a)
		return nil
	}
	if err != nil {
		v.log.Warn("add failed", "addr", a, "err", err)
		v.m.failed(opAdd, err)
		return fmt.Errorf("add %s on %s: %w", a, v.link, err)
	}
	v.owned = union(v.owned, []netip.Addr{a})
	v.m.changed(opAdd)
	v.log.Info("address added", "addr", a)
	return nil
}

func (v *VIPs) remove(link netlink.Link, a netip.Addr) error {
	err := v.nl.AddrDel(link, v.nlAddr(a))
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ESRCH) {
		err = nil // already gone
	}
	if err != nil {
		v.log.Warn("remove failed", "addr", a, "err", err)
		v.m.failed(opRemove, err)
		return fmt.Errorf("remove %s from %s: %w", a, v.link, err)
	}
	v.owned = slices.DeleteFunc(v.owned, func(o netip.Addr) bool { return o == a })
	v.m.changed(opRemove)
	v.log.Info("address removed", "addr", a)
	return nil
}

// nlAddr is a as a host prefix: labelled for IPv4, without duplicate
// address detection for IPv6.
func (v *VIPs) nlAddr(a netip.Addr) *netlink.Addr {
	na := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
	if a.Is4() {
		na.Label = v.label
	} else {
		na.Flags = unix.IFA_F_NODAD
	}
	return na
}

// save records addrs in the state file unless it holds them already. A
// failed write stops nothing (the addresses are set all the same; the file
// only serves a restart): it is counted every time, logged once per
// distinct error, and tried again by the next Set.
func (v *VIPs) save(addrs []netip.Addr) {
	if v.state == "" || slices.Equal(addrs, v.saved) {
		return
	}
	if err := writeState(v.state, addrs); err != nil {
		v.m.failed(opState, err)
		if msg := err.Error(); msg != v.stateErr {
			v.stateErr = msg
			v.log.Warn("cannot write the state file; addresses are set all the same, but a restarted speaker would not remove those added since",
				"file", v.state, "err", err)
		}
		return
	}
	if v.stateErr != "" {
		v.log.Info("state file written again", "file", v.state)
		v.stateErr = ""
	}
	v.saved = slices.Clone(addrs)
}

// union returns the sorted union of two sorted lists.
func union(a, b []netip.Addr) []netip.Addr {
	out := append(slices.Clone(a), b...)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}
