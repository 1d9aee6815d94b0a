package kubelab

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

var macRE = regexp.MustCompile(`(?i)\b([0-9a-f]{2}(:[0-9a-f]{2}){5})\b`)

// WhoAnswers asks for an IPv4 address from the router (arping on the L2
// segment) until a node answers, and names the node.
func (e *Env) WhoAnswers(ctx context.Context, addr netip.Addr) (node, mac string, err error) {
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, _ := e.Site.Router.Run(ctx, "arping", "-c", "1", "-w", "1", "-i", "eth1", addr.String())
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "bytes from") {
				mac = strings.ToLower(macRE.FindString(line))
				return mac != "", nil
			}
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
