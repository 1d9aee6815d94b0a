// Package scenario holds the checks that both labs run against an
// installed Pier: the pods lab (e2e/podlab, netns nodes with kubelets) and
// the kind lab (e2e/kind, Docker containers). One set of checks, two
// clusters: what differs between them (how to ask the segment who answers
// ARP, where the router's FRR runs, where the client sends from) is behind
// Site.
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
)

// Namespace is Pier's namespace in both labs: its pools and the status
// objects its speakers write.
const Namespace = "pier-system"

// patience bounds each step's wait: an address assigned, an announcement
// seen, a request answered.
const patience = 2 * time.Minute

// Site is a cluster with Pier installed, a router and a client outside it.
type Site interface {
	// Kube reads the cluster: Services, Nodes and Pier's objects.
	Kube() client.Client
	// ARPAnswers asks the nodes' L2 segment for addr from outside the
	// cluster and returns the MACs that answered, lower case, each once
	// (none: nobody answered).
	ARPAnswers(ctx context.Context, addr netip.Addr) ([]string, error)
	// NodeMAC is the MAC of node's interface on the segment, lower case.
	NodeMAC(ctx context.Context, node string) (string, error)
	// VTYSH runs one command in the router's FRR and returns its output.
	VTYSH(ctx context.Context, cmd string) (string, error)
	// Reach sends one request from the client to a Service's address (the
	// client routes BGP pools through the router) and returns the name of
	// the backend that answered.
	Reach(ctx context.Context, addr netip.Addr) (backend string, err error)
}

// Service is a LoadBalancer Service and the pool its address must be from.
type Service struct{ Namespace, Name, Pool string }

func (s Service) String() string { return s.Namespace + "/" + s.Name }

// L2Result is what CheckL2 saw.
type L2Result struct {
	Addr      netip.Addr
	Node, MAC string // the announcing node and its MAC
	Backend   string // the backend a request reached
}

// CheckL2 checks a Service of an L2 pool: it has an IPv4 address from the
// pool; ARP for the address is answered by exactly one MAC, the MAC of the
// node its ServiceL2Status names; and a request to it reaches a backend.
// Two MACs answering fail at once; the rest is waited for.
func CheckL2(ctx context.Context, s Site, svc Service) (L2Result, error) {
	addr, err := address(ctx, s.Kube(), svc)
	if err != nil {
		return L2Result{}, err
	}
	r := L2Result{Addr: addr}
	err = poll(ctx, fmt.Sprintf("ARP for %s (Service %s) answered by the node its ServiceL2Status names", addr, svc), func(ctx context.Context) error {
		node, err := l2Node(ctx, s.Kube(), svc)
		if err != nil {
			return err
		}
		want, err := s.NodeMAC(ctx, node)
		if err != nil {
			return err
		}
		macs, err := s.ARPAnswers(ctx, addr)
		switch {
		case err != nil:
			return err
		case len(macs) > 1:
			return stop{fmt.Errorf("answered by %d MACs %v, want only %s's (%s)", len(macs), macs, node, want)}
		case len(macs) == 0:
			return fmt.Errorf("nobody answers ARP for %s; %s (%s) should", addr, node, want)
		case macs[0] != want:
			return fmt.Errorf("ARP for %s answered by %s, but ServiceL2Status names %s (%s)", addr, macs[0], node, want)
		}
		r.Node, r.MAC = node, want
		return nil
	})
	if err != nil {
		return r, err
	}
	r.Backend, err = reach(ctx, s, addr, svc)
	return r, err
}

// BGPResult is what CheckBGP saw.
type BGPResult struct {
	Addr     netip.Addr
	NextHops []string // the router's, sorted
	Backend  string   // the backend a request through the router reached
}

// CheckBGP checks a Service of a BGP pool: it has an IPv4 address from the
// pool; the router's FRR has its /32 with a next hop per node that may
// carry load-balancer traffic (every Node's InternalIP but those labelled
// node.kubernetes.io/exclude-from-external-load-balancers), no other; and
// a request through the router reaches a backend.
func CheckBGP(ctx context.Context, s Site, svc Service) (BGPResult, error) {
	addr, err := address(ctx, s.Kube(), svc)
	if err != nil {
		return BGPResult{}, err
	}
	r := BGPResult{Addr: addr}
	want, err := nodeIPs(ctx, s.Kube())
	if err != nil {
		return r, err
	}
	route := netip.PrefixFrom(addr, 32)
	err = poll(ctx, fmt.Sprintf("%s (Service %s) at the router from every node %v", route, svc, want), func(ctx context.Context) error {
		out, err := s.VTYSH(ctx, "show bgp ipv4 unicast "+route.String()+" json")
		if err != nil {
			return err
		}
		got, err := ParseNextHops(out)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("next hops %v", got)
		}
		r.NextHops = got
		return nil
	})
	if err != nil {
		return r, err
	}
	r.Backend, err = reach(ctx, s, addr, svc)
	return r, err
}

// ParseNextHops reads FRR's `show bgp ... <prefix> json` and returns the
// next hops of all its paths, sorted (none: FRR has no such route).
func ParseNextHops(out string) ([]string, error) {
	var route struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &route); err != nil {
		return nil, fmt.Errorf("FRR route: %w: %.300s", err, out)
	}
	var hops []string
	for _, p := range route.Paths {
		for _, nh := range p.Nexthops {
			hops = append(hops, nh.IP)
		}
	}
	slices.Sort(hops)
	return hops, nil
}

// address waits for svc's IPv4 address and checks it is from svc.Pool.
func address(ctx context.Context, c client.Client, svc Service) (netip.Addr, error) {
	var addr netip.Addr
	err := poll(ctx, fmt.Sprintf("an IPv4 address for Service %s", svc), func(ctx context.Context) error {
		var s corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: svc.Name}, &s); err != nil {
			return err
		}
		for _, a := range config.IngressAddrs(&s) {
			if a.Is4() {
				addr = a
				return nil
			}
		}
		return fmt.Errorf("ingress %v", s.Status.LoadBalancer.Ingress)
	})
	if err != nil {
		return addr, err
	}
	in, err := inPool(ctx, c, svc.Pool, addr)
	if err != nil {
		return addr, err
	}
	if !in {
		return addr, fmt.Errorf("Service %s got %s, which is not from pool %s", svc, addr, svc.Pool)
	}
	return addr, nil
}

// inPool reports whether addr is one of pool's addresses, as Pier's own
// validation reads the pool.
func inPool(ctx context.Context, c client.Client, pool string, addr netip.Addr) (bool, error) {
	var p v1alpha1.IPAddressPool
	if err := c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: pool}, &p); err != nil {
		return false, fmt.Errorf("pool %s: %w", pool, err)
	}
	cfg, err := config.Parse(config.Objects{Pools: []v1alpha1.IPAddressPool{p}})
	if err != nil || len(cfg.Pools) != 1 {
		return false, fmt.Errorf("pool %s is not valid: %w", pool, err)
	}
	for _, pre := range cfg.Pools[0].Prefixes {
		if pre.Contains(addr) {
			return true, nil
		}
	}
	for _, r := range cfg.Pools[0].Ranges {
		if r.First.Compare(addr) <= 0 && addr.Compare(r.Last) <= 0 {
			return true, nil
		}
	}
	return false, nil
}

// l2Node is the node svc's one ServiceL2Status names.
func l2Node(ctx context.Context, c client.Client, svc Service) (string, error) {
	var list v1alpha1.ServiceL2StatusList
	err := c.List(ctx, &list, client.InNamespace(Namespace), client.MatchingLabels{
		v1alpha1.LabelServiceName: svc.Name, v1alpha1.LabelServiceNamespace: svc.Namespace})
	if err != nil {
		return "", fmt.Errorf("ServiceL2Statuses of %s: %w", svc, err)
	}
	var nodes []string
	for _, st := range list.Items {
		nodes = append(nodes, st.Status.Node)
	}
	if len(nodes) != 1 {
		return "", fmt.Errorf("ServiceL2Statuses of %s name nodes %v, want one", svc, nodes)
	}
	return nodes[0], nil
}

// nodeIPs are the IPv4 InternalIPs of the Nodes that may carry
// load-balancer traffic, sorted.
func nodeIPs(ctx context.Context, c client.Client) ([]string, error) {
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var ips []string
	for _, n := range nodes.Items {
		if _, excluded := n.Labels[corev1.LabelNodeExcludeBalancers]; excluded {
			continue
		}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP && ip.Is4() {
				ips = append(ips, a.Address)
			}
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no node may carry load-balancer traffic (none has an IPv4 InternalIP without %s)", corev1.LabelNodeExcludeBalancers)
	}
	slices.Sort(ips)
	return ips, nil
}

func reach(ctx context.Context, s Site, addr netip.Addr, svc Service) (string, error) {
	var backend string
	err := poll(ctx, fmt.Sprintf("a backend of Service %s through %s", svc, addr), func(ctx context.Context) error {
		b, err := s.Reach(ctx, addr)
		if err == nil && strings.TrimSpace(b) == "" {
			err = fmt.Errorf("answer names no backend")
		}
		backend = b
		return err
	})
	return backend, err
}

// stop is an error that waiting longer cannot mend: poll returns it at once.
type stop struct{ error }

// poll retries f every half second until it returns nil, and otherwise
// returns its last error after patience (a stop error at once).
func poll(ctx context.Context, what string, f func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, patience, true, func(ctx context.Context) (bool, error) {
		last = f(ctx)
		var s stop
		if errors.As(last, &s) {
			return false, s.error
		}
		return last == nil, nil
	})
	switch {
	case err == nil:
		return nil
	case errors.As(last, new(stop)):
		return fmt.Errorf("%s: %w", what, last)
	case last != nil:
		return fmt.Errorf("%s: not within %v: %w", what, patience, last)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}
