package agent

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/relay"
)

// Key names a Relay (namespace and name).
type Key = types.NamespacedName

// Config is the part of a relay that needs a new relay instance when it
// changes: everything but the backends.
type Config struct {
	Listeners        []relay.Listener
	KeyByAddressOnly bool
	MaxFlows         int
	MaxDatagramSize  int
	// MaxTCPConns and MaxTCPConnsPerSource are spec.limits.maxTCPConnections
	// and maxTCPConnectionsPerSource (0: the relay's defaults).
	MaxTCPConns          int
	MaxTCPConnsPerSource int
	ConnectTimeout       time.Duration
	TCPIdleTimeout       time.Duration
	UDPIdleTimeout       time.Duration
	DrainTimeout         time.Duration
	// Kernel turns on the kernel data path for the UDP listeners
	// (spec.dataPath Kernel).
	Kernel bool
	// Token is the routing token (spec.routing.token); Length 0 is off.
	Token relay.TokenOptions
}

// Equal reports whether two configs run the same relay.
func (c Config) Equal(o Config) bool {
	return slices.Equal(c.Listeners, o.Listeners) && c.KeyByAddressOnly == o.KeyByAddressOnly &&
		c.MaxFlows == o.MaxFlows && c.MaxDatagramSize == o.MaxDatagramSize &&
		c.MaxTCPConns == o.MaxTCPConns && c.MaxTCPConnsPerSource == o.MaxTCPConnsPerSource &&
		c.ConnectTimeout == o.ConnectTimeout && c.TCPIdleTimeout == o.TCPIdleTimeout &&
		c.UDPIdleTimeout == o.UDPIdleTimeout && c.DrainTimeout == o.DrainTimeout &&
		c.Kernel == o.Kernel && c.Token == o.Token
}

// options are the relay options of c (zero values take the relay's
// defaults).
func (c Config) options(backends []relay.Backend) relay.Options {
	return relay.Options{
		Listeners: c.Listeners, Backends: backends, KeyByAddressOnly: c.KeyByAddressOnly,
		MaxFlows: c.MaxFlows, MaxDatagramSize: c.MaxDatagramSize,
		MaxTCPConns: c.MaxTCPConns, MaxTCPConnsPerSource: c.MaxTCPConnsPerSource,
		ConnectTimeout: c.ConnectTimeout, TCPIdleTimeout: c.TCPIdleTimeout,
		UDPIdleTimeout: c.UDPIdleTimeout, DrainTimeout: c.DrainTimeout,
		Kernel: relay.KernelOptions{Enabled: c.Kernel}, Token: c.Token,
	}
}

// Want is what this node runs for one Relay.
type Want struct {
	Config   Config
	Backends []relay.Backend // sorted by name
	// VIPs are the Relay's addresses (status.addresses), for the kernel
	// data path.
	VIPs []netip.Addr `json:",omitempty"`
}

// Inputs are the API objects Desired reads.
type Inputs struct {
	Relays         []v1alpha1.Relay
	Node           *corev1.Node // this node; nil when unknown
	EndpointSlices []discoveryv1.EndpointSlice
	// Bind is the address listeners bind (a wildcard).
	Bind netip.Addr
}

// Desired returns the relays this node runs. Relays it cannot serve (an
// invalid node selector) are left out and named in the errors.
func Desired(in Inputs) (map[Key]Want, []error) {
	out := map[Key]Want{}
	var errs []error
	for i := range in.Relays {
		r := &in.Relays[i]
		if r.DeletionTimestamp != nil {
			continue
		}
		ok, err := selects(r.Spec.NodeSelector, in.Node)
		if err != nil {
			errs = append(errs, fmt.Errorf("relay %s/%s: node selector: %w", r.Namespace, r.Name, err))
			continue
		}
		if !ok {
			continue
		}
		out[Key{Namespace: r.Namespace, Name: r.Name}] = Want{
			Config:   ConfigOf(&r.Spec, in.Bind),
			Backends: Backends(r, in.EndpointSlices),
			VIPs:     vips(r.Status.Addresses),
		}
	}
	return out, errs
}

// vips parses a Relay's status addresses, sorted; the controller writes
// them, so one that does not parse is left out.
func vips(addrs []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range addrs {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// selects reports whether sel picks node; no selector picks every node, a
// selector picks no unknown node.
func selects(sel *metav1.LabelSelector, node *corev1.Node) (bool, error) {
	if sel == nil {
		return true, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	if node == nil {
		return false, nil
	}
	return s.Matches(labels.Set(node.Labels)), nil
}

// ConfigOf turns a Relay spec into a relay config with listeners on bind.
func ConfigOf(spec *v1alpha1.RelaySpec, bind netip.Addr) Config {
	c := Config{
		KeyByAddressOnly:     spec.Routing.Key == v1alpha1.RoutingKeyClientAddress,
		MaxFlows:             int(spec.Limits.MaxFlows),
		MaxDatagramSize:      int(spec.Limits.MaxDatagramSize),
		MaxTCPConns:          int(spec.Limits.MaxTCPConnections),
		MaxTCPConnsPerSource: int(spec.Limits.MaxTCPConnectionsPerSource),
		ConnectTimeout:       duration(spec.Timeouts.Connect),
		TCPIdleTimeout:       duration(spec.Timeouts.TCPIdle),
		UDPIdleTimeout:       duration(spec.Timeouts.UDPIdle),
		DrainTimeout:         duration(spec.Timeouts.Drain),
		Kernel:               spec.DataPath == v1alpha1.DataPathKernel,
	}
	if t := spec.Routing.Token; t != nil {
		c.Token = relay.TokenOptions{Offset: int(t.Offset), Length: int(t.Length)}
	}
	for _, l := range spec.ListenersOrDefault() {
		c.Listeners = append(c.Listeners, relay.Listener{
			Name: l.Name, Protocol: relay.Protocol(l.Protocol), Addr: netip.AddrPortFrom(bind, uint16(l.Port)),
		})
	}
	return c
}

func duration(d *metav1.Duration) time.Duration {
	if d == nil || d.Duration < 0 {
		return 0
	}
	return d.Duration
}

// Backends are the ready endpoints of the Relay's backend Service, one per
// endpoint, sorted by name. An endpoint is named by its hostname, else its
// target's name, else its address, so that every relay names it alike; when
// a name appears twice (a dual-stack Service has a slice per family) the
// IPv4 entry, else the lowest address, is kept.
func Backends(r *v1alpha1.Relay, eps []discoveryv1.EndpointSlice) []relay.Backend {
	listeners := r.Spec.ListenersOrDefault()
	var out []relay.Backend
	for i := range eps {
		es := &eps[i]
		if es.Namespace != r.Namespace || es.Labels[discoveryv1.LabelServiceName] != r.Spec.Backend.ServiceName {
			continue
		}
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		ports := backendPorts(listeners, es.Ports)
		for _, ep := range es.Endpoints {
			if !ready(ep) || len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			out = append(out, relay.Backend{
				Name: endpointName(ep, a), Addr: a.Unmap(), Ports: ports,
				ProxyProtocol: r.Spec.Backend.ProxyProtocol, HealthPort: uint16(r.Spec.Backend.HealthCheckPort),
			})
		}
	}
	slices.SortFunc(out, func(a, b relay.Backend) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(familyRank(a.Addr), familyRank(b.Addr)), a.Addr.Compare(b.Addr))
	})
	return slices.CompactFunc(out, func(a, b relay.Backend) bool { return a.Name == b.Name })
}

func familyRank(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// ready: conditions.ready unset or true, and not terminating.
func ready(ep discoveryv1.Endpoint) bool {
	c := ep.Conditions
	return (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating)
}

func endpointName(ep discoveryv1.Endpoint, a netip.Addr) string {
	switch {
	case ep.Hostname != nil && *ep.Hostname != "":
		return *ep.Hostname
	case ep.TargetRef != nil && ep.TargetRef.Name != "":
		return ep.TargetRef.Name
	default:
		return a.Unmap().String()
	}
}

// backendPorts maps every listener to the backend port: the slice's port of
// the listener's name, else the listener's target port, else its port.
func backendPorts(listeners []v1alpha1.RelayListener, ports []discoveryv1.EndpointPort) map[string]uint16 {
	out := make(map[string]uint16, len(listeners))
	for _, l := range listeners {
		p := l.Port
		if l.TargetPort != 0 {
			p = l.TargetPort
		}
		for _, ep := range ports {
			if ep.Name != nil && *ep.Name == l.Name && ep.Port != nil && *ep.Port > 0 && *ep.Port <= 65535 {
				p = *ep.Port
				break
			}
		}
		out[l.Name] = uint16(p)
	}
	return out
}
