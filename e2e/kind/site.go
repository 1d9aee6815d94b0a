// Package kind is the kind lab (lab.sh) as the shared scenarios
// (e2e/scenario) see it: the nodes, the FRR router and the client are
// Docker containers on the lab's network, reached with docker exec.
package kind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Runner runs a command and returns its combined output.
type Runner func(ctx context.Context, name string, args ...string) (string, error)

// Options configures New.
type Options struct {
	Kube client.Client // with Pier's types
	// Router and Client are the containers of FRR and of the client, which
	// routes the BGP pool through the router.
	Router, Client string
	// Port is the backends' HTTP port, whose /hostname names the backend.
	Port uint16
	// Iface is the segment's interface in the nodes and the client;
	// default eth0.
	Iface string
	// Run runs docker; default os/exec.
	Run Runner
}

// Site implements scenario.Site with docker exec.
type Site struct{ o Options }

// New validates o; it starts nothing.
func New(o Options) (*Site, error) {
	if o.Kube == nil || o.Router == "" || o.Client == "" || o.Port == 0 {
		return nil, errors.New("kind site: needs a kube client, the router's and the client's containers and the backends' port")
	}
	if o.Iface == "" {
		o.Iface = "eth0"
	}
	if o.Run == nil {
		o.Run = run
	}
	return &Site{o: o}, nil
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (s *Site) exec(ctx context.Context, container string, cmd ...string) (string, error) {
	return s.o.Run(ctx, "docker", append([]string{"exec", container}, cmd...)...)
}

// Kube is the cluster's client.
func (s *Site) Kube() client.Client { return s.o.Kube }

// ARPAnswers arpings addr three times from the client.
func (s *Site) ARPAnswers(ctx context.Context, addr netip.Addr) ([]string, error) {
	out, err := s.exec(ctx, s.o.Client, "arping", "-c", "3", "-w", "5", "-I", s.o.Iface, addr.String())
	macs := ParseARPing(out)
	if err != nil && len(macs) == 0 && !strings.Contains(out, "ARPING") {
		return nil, err // arping did not run; no answer is a result
	}
	return macs, nil
}

// NodeMAC reads the MAC of the node container's segment interface.
func (s *Site) NodeMAC(ctx context.Context, node string) (string, error) {
	out, err := s.exec(ctx, node, "cat", "/sys/class/net/"+s.o.Iface+"/address")
	if err != nil {
		return "", err
	}
	mac, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		return "", fmt.Errorf("MAC of node %s: %w", node, err)
	}
	return mac.String(), nil
}

// VTYSH runs cmd in the router container's vtysh.
func (s *Site) VTYSH(ctx context.Context, cmd string) (string, error) {
	return s.exec(ctx, s.o.Router, "vtysh", "-c", cmd)
}

// Reach GETs /hostname at addr from the client.
func (s *Site) Reach(ctx context.Context, addr netip.Addr) (string, error) {
	url := "http://" + net.JoinHostPort(addr.String(), strconv.Itoa(int(s.o.Port))) + "/hostname"
	out, err := s.exec(ctx, s.o.Client, "curl", "-fsS", "--max-time", "5", url)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

var (
	macRE   = regexp.MustCompile(`(?i)\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b`)
	replyRE = regexp.MustCompile(`(?i)reply from|bytes from`)
)

// ParseARPing returns the MACs of the replies arping printed, lower case,
// each once, in order: iputils' "Unicast reply from 198.51.100.200
// [02:42:C6:33:64:02]" and Thomas Habets' "60 bytes from 02:42:c6:33:64:02
// (198.51.100.200)".
func ParseARPing(out string) []string {
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !replyRE.MatchString(line) {
			continue
		}
		if m := strings.ToLower(macRE.FindString(line)); m != "" && !slices.Contains(macs, m) {
			macs = append(macs, m)
		}
	}
	return macs
}
