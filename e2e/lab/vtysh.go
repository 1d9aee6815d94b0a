package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// VTYSH runs one vtysh command against the FRR instance named instance
// (vtysh -N, as a lab's routers run their daemons) and returns its output.
func VTYSH(instance, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr strings.Builder
	c := exec.CommandContext(ctx, "vtysh", "-N", instance, "-c", cmd)
	c.Stderr = &stderr // a warning about the missing vtysh.conf, or the error
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("vtysh -c %q: %v: %s%s", cmd, err, out, stderr.String())
	}
	return string(out), nil
}

// VTYSHJSON runs a vtysh command that prints JSON and decodes it into v.
func VTYSHJSON(instance, cmd string, v any) error {
	out, err := VTYSH(instance, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("vtysh -c %q: %w: %.300s", cmd, err, out)
	}
	return nil
}

// FRRNeighbor is a BGP session as `show bgp neighbors json` reports it.
type FRRNeighbor struct {
	BGPState               string `json:"bgpState"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	ConnectionsDropped     int    `json:"connectionsDropped"`
}

// FRRNeighbors reports the FRR instance's BGP sessions by neighbor address.
func FRRNeighbors(instance string) (map[string]FRRNeighbor, error) {
	var n map[string]FRRNeighbor
	return n, VTYSHJSON(instance, "show bgp neighbors json", &n)
}
