package vip

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// arpSysctls keep the kernel from answering ARP for, or announcing, a VIP
// held on another interface (see the package doc). "all" applies at once to
// every interface (the kernel uses the larger of "all" and the interface's
// own value); "default" is inherited by interfaces created later.
var arpSysctls = []struct{ key, value string }{
	{"net.ipv4.conf.all.arp_ignore", "1"},
	{"net.ipv4.conf.default.arp_ignore", "1"},
	{"net.ipv4.conf.all.arp_announce", "2"},
	{"net.ipv4.conf.default.arp_announce", "2"},
}

// Prepare sets arp_ignore=1 and arp_announce=2 in the network namespace, so
// that only the elected speaker answers ARP for a VIP this node holds
// locally. Call it before the first Set; calling it again changes nothing.
func (v *VIPs) Prepare() error {
	var errs []error
	for _, s := range arpSysctls {
		if err := v.sysct(s.key, s.value); err != nil {
			errs = append(errs, fmt.Errorf("set %s=%s: %w", s.key, s.value, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		v.log.Warn("arp sysctls not set", "err", err)
		return err
	}
	v.log.Info("arp sysctls set", "arp_ignore", 1, "arp_announce", 2)
	return nil
}

// writeProcSys writes one dotted sysctl key under /proc/sys.
func writeProcSys(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return os.WriteFile(path, []byte(value), 0o644)
}
