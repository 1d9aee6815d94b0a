package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pier-lb/pier/api/v1alpha1"
)

// KindRelay is the Kind of a Relay in [Error.Kind].
const KindRelay = "Relay"

// Relay limits beyond the CRD schema.
const (
	MaxRelayListeners  = 16
	MinNodePort        = 30000
	MaxNodePort        = 32767
	MaxConnectTimeout  = 5 * time.Minute
	MaxTCPIdleTimeout  = 24 * time.Hour
	MaxUDPIdleTimeout  = time.Hour
	MaxDrainTimeout    = time.Hour
	MinIdleTimeout     = time.Second
	MinDatagramSize    = 512
	MaxTokenOffset     = 1024
	MaxTokenLength     = 63 // a backend name as long as a DNS label
	maxListenerNameLen = 15
	// The relay's defaults for spec.limits.maxTCPConnections and
	// maxTCPConnectionsPerSource (relay.DefaultMaxTCPConns and
	// DefaultMaxTCPConnsPerSource; a relay/agent test keeps them equal).
	DefaultRelayMaxTCPConnections          = 10_000
	DefaultRelayMaxTCPConnectionsPerSource = 1_000
	// relayServiceSuffix names the Service Pier owns for a Relay.
	relayServiceSuffix = "-relay"
)

// RelayServiceName is the name of the Service Pier creates and owns for
// the Relay name (exposure LoadBalancer or NodePort), in its namespace.
func RelayServiceName(relay string) string { return relay + relayServiceSuffix }

// RelayExposure is the exposure type of spec, LoadBalancer when unset.
func RelayExposure(spec *v1alpha1.RelaySpec) v1alpha1.RelayExposureType {
	if spec.Exposure.Type == "" {
		return v1alpha1.ExposeLoadBalancer
	}
	return spec.Exposure.Type
}

// RelayDataPath is the data path of spec, Userspace when unset.
func RelayDataPath(spec *v1alpha1.RelaySpec) v1alpha1.RelayDataPath {
	if spec.DataPath == "" {
		return v1alpha1.DataPathUserspace
	}
	return spec.DataPath
}

// NeedsService reports whether the exposure is served through a Service
// Pier owns (LoadBalancer, NodePort).
func NeedsService(t v1alpha1.RelayExposureType) bool {
	return t == v1alpha1.ExposeLoadBalancer || t == v1alpha1.ExposeNodePort
}

// userAnnotations are the pier.dev/ Service annotations a Relay may set on
// its owned Service; Pier writes the others.
var userAnnotations = []string{
	v1alpha1.AnnotationAddressPool,
	v1alpha1.AnnotationAllowSharedIP,
	v1alpha1.AnnotationLoadBalancerIPs,
}

// ParseRelay validates one Relay beyond its CRD schema and returns its
// configuration, or the zero Relay and one *Error per problem. It is pure
// and never panics; the controller, the webhook and the relays all call it,
// so a node runs no Relay the controller reports invalid.
// Relays are checked alone: unlike the four configuration kinds they live
// in the applications' namespaces and refer to nothing Parse reads.
//
// Rules: the name is at most 63 characters (a label value: relays label
// their Leases with it); with exposure LoadBalancer (the default) or
// NodePort, the name plus "-relay" (the owned Service, [RelayServiceName])
// must be a DNS-1035 label, so names are at most 57 characters and start
// with a letter.
// Listeners (as written; the defaults are valid): at most 16; names 1 to 15
// characters of a DNS-1123 label, unique; protocol TCP or UDP; port 1 to
// 65535, each protocol/port once, and not a port Pier's daemons hold on
// every node (7946/TCP and UDP gossip, 7474/TCP and 7572/TCP metrics, the
// defaults); targetPort 0 or 1 to 65535; nodePort
// only with exposure NodePort, 30000 to 32767, each protocol/nodePort once.
// backend.serviceName is a Service name (DNS-1035 label);
// backend.healthCheckPort 0 or 1 to 65535. A Relay whose listeners are all
// UDP and that names no healthCheckPort is accepted with the Userspace data
// path: its relays have no port to check actively and rely on
// EndpointSlice readiness and passive checks (ICMP unreachable), as the
// relay does for any backend without a TCP port. With exposure HostNetwork, serviceAnnotations, ipFamilyPolicy
// and ipFamilies are refused, since no Service would carry them. Otherwise
// ipFamilies are IPv4 or IPv6, each once, at most two, and two need
// PreferDualStack or RequireDualStack (SingleStack is the default).
// serviceAnnotations keys are valid annotation keys; under pier.dev/ only
// address-pool, allow-shared-ip and loadBalancerIPs (non-empty; the IPs
// one address, or one per family with a dual-stack policy); other domains
// are copied as they are. Timeouts, when set, are above 0: connect at most
// 5m; tcpIdle 1s to 24h; udpIdle 1s to 1h; drain at most 1h. maxFlows,
// maxTCPConnections and maxTCPConnectionsPerSource are not negative, the
// last at most maxTCPConnections (default 10000); maxDatagramSize 0 or 512
// to 65535. nodeSelector parses;
// routing.key is ClientAddressPort or ClientAddress; routing.token, when
// set, has offset 0 to 1024 and length 1 to 63. dataPath is Userspace or
// Kernel; Kernel refuses backend.proxyProtocol (the kernel adds no header)
// and routing.token (the kernel places a flow before the relay reads any
// payload), and needs an active check, a TCP listener (the defaults have one)
// or backend.healthCheckPort, since the kernel path cannot see a dead UDP
// server's ICMP port unreachable.
func ParseRelay(o *v1alpha1.Relay) (Relay, []*Error) {
	p := &parser{}
	r := refOf(KindRelay, &o.ObjectMeta)
	if !p.checkName(r) {
		return Relay{}, p.errs
	}
	if len(r.Name) > validation.LabelValueMaxLength {
		p.fail(r, "metadata.name", "%d characters; at most %d, since relays label their Leases with the name",
			len(r.Name), validation.LabelValueMaxLength)
	}
	s := &o.Spec
	if NeedsService(RelayExposure(s)) {
		if msgs := validation.IsDNS1035Label(RelayServiceName(r.Name)); len(msgs) > 0 {
			p.fail(r, "metadata.name", "the owned Service %q would not be a valid Service name: %s",
				RelayServiceName(r.Name), strings.Join(msgs, "; "))
		}
	}
	p.relaySpec(r, s)
	if len(p.errs) > 0 {
		return Relay{}, p.errs
	}
	return relayOf(s), nil
}

// relaySpec checks a Relay's spec (ParseRelay, StandaloneRelay).
func (p *parser) relaySpec(r Ref, s *v1alpha1.RelaySpec) {
	exp := p.relayExposure(r, s)
	p.relayListeners(r, s.Listeners, exp)
	p.relayBackend(r, &s.Backend)
	if exp == v1alpha1.ExposeHostNetwork {
		p.noServiceFields(r, &s.Exposure)
	} else {
		p.relayFamilies(r, &s.Exposure)
		p.relayAnnotations(r, &s.Exposure)
	}
	if s.NodeSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(s.NodeSelector); err != nil {
			p.fail(r, "spec.nodeSelector", "invalid label selector: %v", err)
		}
	}
	switch s.Routing.Key {
	case "", v1alpha1.RoutingKeyClientAddressPort, v1alpha1.RoutingKeyClientAddress:
	default:
		p.fail(r, "spec.routing.key", "%q is not ClientAddressPort or ClientAddress", s.Routing.Key)
	}
	p.relayToken(r, s.Routing.Token)
	p.relayTimeouts(r, &s.Timeouts)
	p.relayLimits(r, &s.Limits)
	p.relayDataPath(r, s)
}

// pierPort is a port one of Pier's daemons holds on every node's own
// addresses: the relays and speakers use the host network, so a relay
// listener on it would fail to bind or take the daemon's traffic.
type pierPort struct {
	port     int32
	protocol corev1.Protocol
	what     string
}

// pierPorts are the defaults of the charts and commands (pier-speaker
// --bind-port and --metrics-addr, pier-relay --metrics-addr).
var pierPorts = []pierPort{
	{7946, corev1.ProtocolTCP, "the speakers' memberlist (gossip) port"},
	{7946, corev1.ProtocolUDP, "the speakers' memberlist (gossip) port"},
	{7474, corev1.ProtocolTCP, "pier-relay's metrics port"},
	{7572, corev1.ProtocolTCP, "pier-speaker's metrics port"},
}

// notPierPort refuses a listener on one of pierPorts.
func (p *parser) notPierPort(r Ref, path string, l v1alpha1.RelayListener) {
	for _, pp := range pierPorts {
		if pp.port == l.Port && pp.protocol == l.Protocol {
			p.fail(r, path, "%d/%s is %s on every node", l.Port, l.Protocol, pp.what)
		}
	}
}

func (p *parser) relayExposure(r Ref, s *v1alpha1.RelaySpec) v1alpha1.RelayExposureType {
	exp := RelayExposure(s)
	switch exp {
	case v1alpha1.ExposeLoadBalancer, v1alpha1.ExposeNodePort, v1alpha1.ExposeHostNetwork:
	default:
		p.fail(r, "spec.exposure.type", "%q is not LoadBalancer, NodePort or HostNetwork", exp)
	}
	return exp
}

// relayListeners checks the listeners as written (the defaults are valid).
func (p *parser) relayListeners(r Ref, ls []v1alpha1.RelayListener, exp v1alpha1.RelayExposureType) {
	if len(ls) > MaxRelayListeners {
		p.fail(r, "spec.listeners", "%d listeners; at most %d", len(ls), MaxRelayListeners)
	}
	names := map[string]int{}
	ports := map[string]int{}
	nodePorts := map[string]int{}
	for i, l := range ls {
		path := field("spec.listeners", i)
		p.listenerName(r, path, l.Name, names, i)
		if l.Protocol != corev1.ProtocolTCP && l.Protocol != corev1.ProtocolUDP {
			p.fail(r, path+".protocol", "%q is not TCP or UDP", l.Protocol)
		}
		if p.port(r, path+".port", l.Port, true) {
			p.uniqueListener(r, path+".port", fmt.Sprintf("%d/%s", l.Port, l.Protocol), ports, i)
			p.notPierPort(r, path+".port", l)
		}
		p.port(r, path+".targetPort", l.TargetPort, false)
		p.nodePort(r, path, l, exp, nodePorts, i)
	}
}

func (p *parser) listenerName(r Ref, path, name string, seen map[string]int, i int) {
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 || len(name) > maxListenerNameLen {
		p.fail(r, path+".name", "%q is not a listener name: want 1 to %d lower-case letters, digits and '-', starting and ending with a letter or digit",
			name, maxListenerNameLen)
		return
	}
	p.uniqueListener(r, path+".name", fmt.Sprintf("%q", name), seen, i)
}

// uniqueListener records key for listener i and refuses it when an earlier
// listener has it.
func (p *parser) uniqueListener(r Ref, path, key string, seen map[string]int, i int) {
	if j, dup := seen[key]; dup {
		p.fail(r, path, "%s is also spec.listeners[%d]", key, j)
		return
	}
	seen[key] = i
}

// port checks a port number; 0 is allowed when optional.
func (p *parser) port(r Ref, path string, v int32, required bool) bool {
	if (v == 0 && !required) || (v >= 1 && v <= 65535) {
		return v != 0
	}
	p.fail(r, path, "port %d out of range; want 1 to 65535", v)
	return false
}

func (p *parser) nodePort(r Ref, path string, l v1alpha1.RelayListener, exp v1alpha1.RelayExposureType, seen map[string]int, i int) {
	switch {
	case l.NodePort == 0:
	case exp != v1alpha1.ExposeNodePort:
		p.fail(r, path+".nodePort", "set only with exposure NodePort (exposure is %s)", exp)
	case l.NodePort < MinNodePort || l.NodePort > MaxNodePort:
		p.fail(r, path+".nodePort", "node port %d out of range; want %d to %d", l.NodePort, MinNodePort, MaxNodePort)
	default:
		p.uniqueListener(r, path+".nodePort", fmt.Sprintf("node port %d/%s", l.NodePort, l.Protocol), seen, i)
	}
}

func (p *parser) relayBackend(r Ref, b *v1alpha1.RelayBackend) {
	if msgs := validation.IsDNS1035Label(b.ServiceName); len(msgs) > 0 {
		p.fail(r, "spec.backend.serviceName", "%q is not a Service name: %s", b.ServiceName, strings.Join(msgs, "; "))
	}
	p.port(r, "spec.backend.healthCheckPort", b.HealthCheckPort, false)
}

// noServiceFields refuses Service settings that would be silently ignored
// with exposure HostNetwork.
func (p *parser) noServiceFields(r Ref, e *v1alpha1.RelayExposure) {
	const msg = "has no effect with exposure HostNetwork (no Service is created)"
	if len(e.ServiceAnnotations) > 0 {
		p.fail(r, "spec.exposure.serviceAnnotations", msg)
	}
	if e.IPFamilyPolicy != nil {
		p.fail(r, "spec.exposure.ipFamilyPolicy", msg)
	}
	if len(e.IPFamilies) > 0 {
		p.fail(r, "spec.exposure.ipFamilies", msg)
	}
}

// relayFamilies checks the owned Service's families as the API server
// would, so a Relay is refused rather than its Service failing later.
func (p *parser) relayFamilies(r Ref, e *v1alpha1.RelayExposure) {
	for i, f := range e.IPFamilies {
		path := field("spec.exposure.ipFamilies", i)
		switch {
		case f != corev1.IPv4Protocol && f != corev1.IPv6Protocol:
			p.fail(r, path, "%q is not IPv4 or IPv6", f)
		case slices.Index(e.IPFamilies, f) < i:
			p.fail(r, path, "%s is listed twice", f)
		case i >= 2:
			p.fail(r, path, "at most two families, one IPv4 and one IPv6")
		}
	}
	policy := corev1.IPFamilyPolicySingleStack
	if e.IPFamilyPolicy != nil {
		policy = *e.IPFamilyPolicy
	}
	switch policy {
	case corev1.IPFamilyPolicySingleStack:
		if len(e.IPFamilies) > 1 {
			p.fail(r, "spec.exposure.ipFamilyPolicy", "SingleStack (the default) allows one family; set PreferDualStack or RequireDualStack for %d", len(e.IPFamilies))
		}
	case corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack:
	default:
		p.fail(r, "spec.exposure.ipFamilyPolicy", "%q is not SingleStack, PreferDualStack or RequireDualStack", policy)
	}
}

// relayAnnotations accepts valid annotation keys; under pier.dev/ only
// those a user sets on a Service, with valid values.
func (p *parser) relayAnnotations(r Ref, e *v1alpha1.RelayExposure) {
	const path = "spec.exposure.serviceAnnotations"
	for _, k := range sortedKeys(e.ServiceAnnotations) {
		kpath := path + "[" + k + "]"
		if msgs := validation.IsQualifiedName(strings.ToLower(k)); len(msgs) > 0 {
			p.fail(r, kpath, "%q is not an annotation key: %s", k, strings.Join(msgs, "; "))
			continue
		}
		if !strings.HasPrefix(k, "pier.dev/") {
			continue
		}
		if !slices.Contains(userAnnotations, k) {
			p.fail(r, kpath, "not a Pier annotation a Service may request; want one of %s", strings.Join(userAnnotations, ", "))
			continue
		}
		p.annotationValue(r, kpath, k, e.ServiceAnnotations[k], e.IPFamilyPolicy)
	}
	if err := apivalidation.ValidateAnnotationsSize(e.ServiceAnnotations); err != nil {
		p.fail(r, path, "%v", err)
	}
}

func (p *parser) annotationValue(r Ref, path, key, v string, policy *corev1.IPFamilyPolicy) {
	if strings.TrimSpace(v) == "" {
		p.fail(r, path, "must not be empty")
		return
	}
	if key != v1alpha1.AnnotationLoadBalancerIPs {
		return
	}
	var addrs []netip.Addr
	for _, s := range strings.Split(v, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			p.fail(r, path, "%q is not an IP address", s)
			return
		}
		addrs = append(addrs, a.Unmap())
	}
	switch {
	case len(addrs) > 2 || len(addrs) == 2 && addrs[0].Is4() == addrs[1].Is4():
		p.fail(r, path, "%q: want one address, or one IPv4 and one IPv6", v)
	case len(addrs) == 2 && (policy == nil || *policy == corev1.IPFamilyPolicySingleStack):
		p.fail(r, path, "%q names two families but the ipFamilyPolicy is SingleStack", v)
	}
}

func (p *parser) relayTimeouts(r Ref, t *v1alpha1.RelayTimeouts) {
	p.timeout(r, "spec.timeouts.connect", t.Connect, 0, MaxConnectTimeout)
	p.timeout(r, "spec.timeouts.tcpIdle", t.TCPIdle, MinIdleTimeout, MaxTCPIdleTimeout)
	p.timeout(r, "spec.timeouts.udpIdle", t.UDPIdle, MinIdleTimeout, MaxUDPIdleTimeout)
	p.timeout(r, "spec.timeouts.drain", t.Drain, 0, MaxDrainTimeout)
}

// timeout refuses a set duration that is not above 0 or outside [lo, hi].
func (p *parser) timeout(r Ref, path string, d *metav1.Duration, lo, hi time.Duration) {
	switch {
	case d == nil:
	case d.Duration <= 0:
		p.fail(r, path, "%v: must be more than 0 (leave it unset for the default)", d.Duration)
	case d.Duration < lo:
		p.fail(r, path, "%v is shorter than %v", d.Duration, lo)
	case d.Duration > hi:
		p.fail(r, path, "%v is longer than %v", d.Duration, hi)
	}
}

func (p *parser) relayLimits(r Ref, l *v1alpha1.RelayLimits) {
	if l.MaxFlows < 0 {
		p.fail(r, "spec.limits.maxFlows", "%d: must be at least 1 (0 or unset for the default)", l.MaxFlows)
	}
	p.relayTCPLimits(r, l)
	if l.MaxDatagramSize != 0 && (l.MaxDatagramSize < MinDatagramSize || l.MaxDatagramSize > 65535) {
		p.fail(r, "spec.limits.maxDatagramSize", "%d out of range; want %d to 65535", l.MaxDatagramSize, MinDatagramSize)
	}
}

// relayTCPLimits checks the connection limits: above 0 when set, and the
// per-source one at most the listener's (default included).
func (p *parser) relayTCPLimits(r Ref, l *v1alpha1.RelayLimits) {
	const path = "spec.limits.maxTCPConnections"
	if l.MaxTCPConnections < 0 {
		p.fail(r, path, "%d: must be at least 1 (0 or unset for the default)", l.MaxTCPConnections)
	}
	if l.MaxTCPConnectionsPerSource < 0 {
		p.fail(r, path+"PerSource", "%d: must be at least 1 (0 or unset for the default)", l.MaxTCPConnectionsPerSource)
		return
	}
	switch lim := l.MaxTCPConnections; {
	case lim == 0 && l.MaxTCPConnectionsPerSource > DefaultRelayMaxTCPConnections:
		p.fail(r, path+"PerSource", "%d is more than maxTCPConnections (%d, the default)", l.MaxTCPConnectionsPerSource, DefaultRelayMaxTCPConnections)
	case lim > 0 && l.MaxTCPConnectionsPerSource > lim:
		p.fail(r, path+"PerSource", "%d is more than maxTCPConnections (%d)", l.MaxTCPConnectionsPerSource, lim)
	}
}

// relayToken checks the routing token's byte range.
func (p *parser) relayToken(r Ref, t *v1alpha1.RelayRoutingToken) {
	if t == nil {
		return
	}
	if t.Offset < 0 || t.Offset > MaxTokenOffset {
		p.fail(r, "spec.routing.token.offset", "%d out of range; want 0 to %d", t.Offset, MaxTokenOffset)
	}
	if t.Length < 1 || t.Length > MaxTokenLength {
		p.fail(r, "spec.routing.token.length", "%d out of range; want 1 to %d", t.Length, MaxTokenLength)
	}
}

// relayDataPath checks what the kernel data path cannot do.
func (p *parser) relayDataPath(r Ref, s *v1alpha1.RelaySpec) {
	const path = "spec.dataPath"
	switch RelayDataPath(s) {
	case v1alpha1.DataPathUserspace:
		return
	case v1alpha1.DataPathKernel:
	default:
		p.fail(r, path, "%q is not Userspace or Kernel", s.DataPath)
		return
	}
	if s.Backend.ProxyProtocol {
		p.fail(r, path, "Kernel cannot be combined with spec.backend.proxyProtocol: the kernel path adds no PROXY protocol header")
	}
	if s.Routing.Token != nil {
		p.fail(r, path, "Kernel cannot be combined with spec.routing.token: the kernel places a flow on its first packet without reading its payload")
	}
	hasTCP := slices.ContainsFunc(s.ListenersOrDefault(), func(l v1alpha1.RelayListener) bool {
		return l.Protocol == corev1.ProtocolTCP
	})
	if !hasTCP && s.Backend.HealthCheckPort == 0 {
		p.fail(r, path, "Kernel needs an active TCP check (a TCP listener or spec.backend.healthCheckPort): "+
			"the kernel path cannot see a dead UDP server's ICMP port unreachable")
	}
}
