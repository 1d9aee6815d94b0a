package agent

import (
	"cmp"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/relay"
)

// Key names a Relay (namespace and name).
type Key = types.NamespacedName

// Config is the part of a relay that needs a new relay instance when it
// changes: everything but the backends. It is built from a config.Relay
// (ConfigOf), never from a Relay object directly, so that a node runs only
// what config accepts.
type Config struct {
	Listeners []relay.Listener
	// RelaySettings are the routing, limits, timeouts and data path.
	config.RelaySettings
	// Token is the routing token (spec.routing.token); Length 0 is off.
	Token relay.TokenOptions
}

// Equal reports whether two configs run the same relay. Config has these
// three fields only (a test keeps it so): the settings are compared whole,
// so a field added to config.RelaySettings is compared too.
func (c Config) Equal(o Config) bool {
	return slices.Equal(c.Listeners, o.Listeners) && c.RelaySettings == o.RelaySettings && c.Token == o.Token
}

// ConfigOf is the relay config of a valid configuration; listeners that
// name no address (a Relay object's) listen on bind.
func ConfigOf(c config.Relay, bind netip.Addr) Config {
	out := Config{
		RelaySettings: c.Settings,
		Token:         relay.TokenOptions{Offset: c.Token.Offset, Length: c.Token.Length},
	}
	for _, l := range c.Listeners {
		addr := l.Addr
		if !addr.IsValid() {
			addr = bind
		}
		out.Listeners = append(out.Listeners, relay.Listener{
			Name: l.Name, Protocol: relay.Protocol(l.Protocol), Addr: netip.AddrPortFrom(addr, l.Port),
		})
	}
	return out
}

// RelayOptions are the relay options of c with backends (zero values take
// the relay's defaults); the caller adds metrics, logger, clock, addresses
// and the kernel's tables.
func (c Config) RelayOptions(backends []relay.Backend) relay.Options {
	s := c.RelaySettings
	return relay.Options{
		Listeners: c.Listeners, Backends: backends, KeyByAddressOnly: s.KeyByAddressOnly,
		MaxFlows: s.MaxFlows, MaxDatagramSize: s.MaxDatagramSize,
		MaxTCPConns: s.MaxTCPConns, MaxTCPConnsPerSource: s.MaxTCPConnsPerSource,
		ConnectTimeout: s.ConnectTimeout, TCPIdleTimeout: s.TCPIdleTimeout,
		UDPIdleTimeout: s.UDPIdleTimeout, DrainTimeout: s.DrainTimeout,
		Kernel: relay.KernelOptions{Enabled: s.Kernel}, Token: c.Token,
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
	// Accepted are the Relays as the previous pass accepted them (Desired's
	// second result); nil on the first pass.
	Accepted map[Key]*v1alpha1.Relay
}

// Desired returns the relays this node runs, and the Relays it accepted,
// for the next pass's Inputs.Accepted. Every Relay is parsed with
// config.ParseRelay; one that fails is refused (named in refused, with its
// errors joined) and served, if at all, as it was last accepted: a change
// the controller reports invalid leaves the relay as it was, and a Relay
// never accepted is not served.
func Desired(in Inputs) (want map[Key]Want, accepted map[Key]*v1alpha1.Relay, refused map[Key]error) {
	want, accepted, refused = map[Key]Want{}, map[Key]*v1alpha1.Relay{}, map[Key]error{}
	for i := range in.Relays {
		r := &in.Relays[i]
		if r.DeletionTimestamp != nil {
			continue
		}
		k := Key{Namespace: r.Namespace, Name: r.Name}
		spec := r
		cfg, problems := config.ParseRelay(r)
		if len(problems) > 0 {
			refused[k] = joinProblems(problems)
			prev, ok := in.Accepted[k]
			if !ok {
				continue
			}
			spec = prev
			cfg, _ = config.ParseRelay(prev)
		}
		accepted[k] = spec
		if !selects(cfg.NodeSelector, in.Node) {
			continue
		}
		want[k] = Want{
			Config:   ConfigOf(cfg, in.Bind),
			Backends: Backends(spec, in.EndpointSlices),
			VIPs:     vips(r.Status.Addresses),
		}
	}
	return want, accepted, refused
}

// selects reports whether sel picks node; an empty selector picks every
// node, another picks no unknown node.
func selects(sel labels.Selector, node *corev1.Node) bool {
	if sel.Empty() {
		return true
	}
	return node != nil && sel.Matches(labels.Set(node.Labels))
}

func joinProblems(problems []*config.Error) error {
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return errors.Join(errs...)
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

// Backends are the ready endpoints of the Relay's backend Service, one per
// endpoint, sorted by name. An endpoint is named by its hostname, else its
// target's name, else its address, so that every relay names it alike; when
// a name appears twice (a dual-stack Service has a slice per family) the
// IPv4 entry, else the lowest address, is kept. Slices labelled with a
// weight (v1alpha1.LabelEndpointWeight) give their endpoints that weight on
// the listeners their ports name, and no other: an endpoint listed in
// several such slices (a Gateway's listeners) is one backend, its ports
// and weights merged.
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
		ports, weights, ok := sliceTerms(listeners, es)
		if !ok {
			continue
		}
		for _, ep := range es.Endpoints {
			if !ready(ep) || len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			out = append(out, relay.Backend{
				Name: endpointName(ep, a), Addr: a.Unmap(), Ports: ports, Weights: weights,
				ProxyProtocol: r.Spec.Backend.ProxyProtocol, HealthPort: uint16(r.Spec.Backend.HealthCheckPort),
			})
		}
	}
	slices.SortStableFunc(out, func(a, b relay.Backend) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(familyRank(a.Addr), familyRank(b.Addr)), a.Addr.Compare(b.Addr))
	})
	return mergeByName(out)
}

// sliceTerms are the backend ports of a slice's endpoints and, for a
// weighted slice, their weights on the listeners its ports name (false:
// a weight that does not parse; the slice is skipped).
func sliceTerms(listeners []v1alpha1.RelayListener, es *discoveryv1.EndpointSlice) (map[string]uint16, map[string]uint32, bool) {
	ports := backendPorts(listeners, es.Ports)
	label, weighted := es.Labels[v1alpha1.LabelEndpointWeight]
	if !weighted {
		return ports, nil, true
	}
	w, err := strconv.ParseUint(label, 10, 32)
	if err != nil {
		return nil, nil, false
	}
	weights := map[string]uint32{}
	for _, p := range es.Ports {
		if p.Name != nil && ports[*p.Name] != 0 {
			weights[*p.Name] = uint32(w)
		}
	}
	maps.DeleteFunc(ports, func(name string, _ uint16) bool { _, ok := weights[name]; return !ok })
	return ports, weights, true
}

// mergeByName keeps one backend per name (out is sorted by name, the
// preferred address first). Weighted entries of the same address merge
// their ports and weights; the first entry's port and weight of a listener
// win.
func mergeByName(out []relay.Backend) []relay.Backend {
	var merged []relay.Backend
	for _, b := range out {
		n := len(merged)
		if n == 0 || merged[n-1].Name != b.Name {
			merged = append(merged, b)
			continue
		}
		last := &merged[n-1]
		if last.Weights == nil || b.Weights == nil || last.Addr != b.Addr {
			continue
		}
		last.Ports, last.Weights = maps.Clone(last.Ports), maps.Clone(last.Weights)
		for l, w := range b.Weights {
			if _, taken := last.Weights[l]; !taken {
				last.Weights[l], last.Ports[l] = w, b.Ports[l]
			}
		}
	}
	return merged
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
