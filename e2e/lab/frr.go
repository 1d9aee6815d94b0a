package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// FRRRunDir creates the run directory of FRR instance name (its sockets
// and pid files, where vtysh -N looks), owned by user frr, the daemons'
// user. Remove it when the instance is gone.
func FRRRunDir(name string) (string, error) {
	run := filepath.Join("/var/run/frr", name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("chown", "frr:frr", run).CombinedOutput(); err != nil {
		return "", fmt.Errorf("chown %s: %v: %s", run, err, out)
	}
	return run, nil
}

// StartFRRDaemon runs FRR's daemon (zebra, bfdd, bgpd...) of instance
// name on h with the configuration file conf (readable by user frr),
// logging to its output, and waits until vtysh answers probe (until ctx's
// deadline, else for 30 s). Start an
// instance's daemons one after another, zebra first: bgpd registers its
// BFD neighbors through zebra, which drops registrations made before
// bfdd is there.
func StartFRRDaemon(ctx context.Context, h *Host, name, daemon, conf, probe string) (*Process, error) {
	pid := filepath.Join("/var/run/frr", name, daemon+".pid")
	p, err := h.Start("/usr/lib/frr/"+daemon, "-N", name, "-f", conf, "--log", "stdout", "-i", pid)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	for {
		_, err := VTYSH(name, probe)
		if err == nil {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("FRR %s: %s never answered vtysh %q: %w; its output:\n%s", name, daemon, probe, err, p.OutputTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
