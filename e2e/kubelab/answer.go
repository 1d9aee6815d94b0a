package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/lab"
)

var macRE = regexp.MustCompile(`(?i)\b([0-9a-f]{2}(:[0-9a-f]{2}){5})\b`)

// ARPReplies asks for addr count times from h on iface (arping) and returns
// the MAC of every reply, lower case.
func ARPReplies(ctx context.Context, h *lab.Host, iface string, addr netip.Addr, count int) []string {
	out, _ := h.Run(ctx, "arping", "-c", fmt.Sprint(count), "-w", "1", "-i", iface, addr.String())
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "bytes from") {
			continue
		}
		if m := macRE.FindString(line); m != "" {
			macs = append(macs, strings.ToLower(m))
		}
	}
	return macs
}

// WhoAnswers asks for an IPv4 address from the router (arping on the L2
// segment) until a node answers, and names the node.
func (e *Env) WhoAnswers(ctx context.Context, addr netip.Addr) (node, mac string, err error) {
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if macs := ARPReplies(ctx, e.Site.Router, "eth1", addr, 1); len(macs) > 0 {
			mac = macs[0]
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return "", "", fmt.Errorf("nobody answers ARP for %s: %w", addr, err)
	}
	for _, n := range e.Site.Nodes {
		out, _ := n.Run(ctx, "cat", "/sys/class/net/eth1/address")
		if strings.TrimSpace(out) == mac {
			return n.Name, mac, nil
		}
	}
	return "", mac, fmt.Errorf("%s answered by %s, which is no node's", addr, mac)
}
