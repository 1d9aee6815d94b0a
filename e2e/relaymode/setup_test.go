package relaymode

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

// The lab's calling service: namespace voice, backend Service "media" with
// three servers srv1..srv3 (hostnames, so the relays name them alike), each
// running a plain stand-in on 9443/TCP and 9384/UDP and a PROXY v2 one on
// 9444/TCP and 9385/UDP.
const (
	ns          = "voice"
	backendSvc  = "media"
	backendTCP  = 9443
	backendUDP  = 9384
	proxyTCP    = 9444
	proxyUDP    = 9385
	ppListenTCP = 8444
	ppListenUDP = 16385
)

var servers = []string{"srv1", "srv2", "srv3"}

// site is the running lab with its relays.
type site struct {
	env    *kubelab.Env
	relays []*lab.Process // pier-relay by node
	// hosts and stand-ins (plain, then PROXY v2) of the servers, by name.
	hosts  map[string]*lab.Host
	echoes map[string][]*lab.Process
	// Addresses of the Relays "calls" (dual-stack: IPv4 then IPv6) and
	// "calls-pp" (PROXY v2 towards the backends).
	calls, callsPP []netip.Addr
}

// Relays: "calls" with the default listeners (8443/TCP, 16384/UDP; the
// backend ports come from the slice's named ports) and "calls-pp" with
// PROXY v2 (backend ports from the listeners' target ports).
func callsRelay() *v1alpha1.Relay {
	return &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "calls"},
		Spec: v1alpha1.RelaySpec{
			Backend: v1alpha1.RelayBackend{ServiceName: backendSvc},
			Exposure: v1alpha1.RelayExposure{
				Type: v1alpha1.ExposeLoadBalancer, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack),
			},
		},
	}
}

func callsPPRelay() *v1alpha1.Relay {
	return &v1alpha1.Relay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "calls-pp"},
		Spec: v1alpha1.RelaySpec{
			Listeners: []v1alpha1.RelayListener{
				{Name: "pp-tcp", Protocol: corev1.ProtocolTCP, Port: ppListenTCP, TargetPort: proxyTCP},
				{Name: "pp-udp", Protocol: corev1.ProtocolUDP, Port: ppListenUDP, TargetPort: proxyUDP},
			},
			Backend:  v1alpha1.RelayBackend{ServiceName: backendSvc, ProxyProtocol: true},
			Exposure: v1alpha1.RelayExposure{Type: v1alpha1.ExposeLoadBalancer},
		},
	}
}

// up builds the lab: control plane, controller, speakers with --local-vip,
// three backend hosts, the Relays (pier-controller gives each a
// LoadBalancer Service and so an address) and a relay on every node.
func up(t testing.TB) *site {
	t.Helper()
	return upWith(t, kubelab.Options{SpeakerArgs: []string{"--local-vip", "--metrics-addr", "0"}})
}

// upWith is up with other lab options (speaker flags, kube-proxy); the
// node count and the binaries are up's.
func upWith(t testing.TB, opts kubelab.Options) *site {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := upServers(t, ctx, opts)
	env := s.env
	for _, r := range []*v1alpha1.Relay{callsRelay(), callsPPRelay()} {
		if err := env.Pier.Create(ctx, r); err != nil {
			t.Fatalf("create relay %s: %v", r.Name, err)
		}
	}
	s.calls = s.relayAddrs(t, callsRelay())
	s.callsPP = s.relayAddrs(t, callsPPRelay())
	for i := range env.Site.Nodes {
		s.startRelay(t, i)
	}
	for _, r := range []string{"calls", "calls-pp"} {
		s.waitLeases(t, r, len(env.Site.Nodes))
		s.waitStatus(t, r, int32(len(env.Site.Nodes)), int32(len(servers)))
		s.waitRelayEndpoints(t, r, len(env.Site.Nodes))
	}
	// The Relay Services have externalTrafficPolicy Local: the owner of an
	// address is chosen among the nodes with a live relay, so it may move
	// while the relays come up. Tests start once it holds still.
	s.settledOwner(t, s.calls[0])
	return s
}

// upServers builds the lab (three nodes, the control plane, controller
// and speakers) with the three servers, their namespace and their
// EndpointSlice, and no Relay and no relay yet.
func upServers(t testing.TB, ctx context.Context, opts kubelab.Options) *site {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "arping")
	opts.Nodes, opts.ControllerBinary, opts.SpeakerBinary = 3, binary(t, "pier-controller"), binary(t, "pier-speaker")
	env, err := kubelab.Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &site{env: env, relays: make([]*lab.Process, len(env.Site.Nodes)),
		hosts: map[string]*lab.Host{}, echoes: map[string][]*lab.Process{}}
	t.Cleanup(func() { s.close(t) })
	s.startBackends(t, ctx)
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.writeEndpoints(t, map[string]bool{"srv1": true, "srv2": true, "srv3": true})
	return s
}

// waitRelayEndpoints waits until the EndpointSlices pier-controller writes
// for a Relay's Service list n ready relay nodes.
func (s *site) waitRelayEndpoints(t testing.TB, relay string, n int) {
	t.Helper()
	svc := config.RelayServiceName(relay)
	ready := 0
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list discoveryv1.EndpointSliceList
		if err := s.env.Pier.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
			return false, err
		}
		nodes := map[string]bool{} // one slice per address family
		for _, es := range list.Items {
			for _, e := range es.Endpoints {
				if ptr.Deref(e.Conditions.Ready, true) && e.NodeName != nil {
					nodes[*e.NodeName] = true
				}
			}
		}
		ready = len(nodes)
		return ready == n, nil
	})
	if err != nil {
		t.Fatalf("Service %s/%s: %d ready relay endpoints, want %d", ns, svc, ready, n)
	}
}

func (s *site) close(t testing.TB) {
	if t.Failed() {
		for i, p := range s.relays {
			if p != nil {
				t.Logf("relay node%d output (tail):\n%s", i+1, p.OutputTail(30))
			}
		}
		for i, p := range s.env.Speakers {
			if p != nil {
				t.Logf("speaker node%d output (tail):\n%s", i+1, p.OutputTail(20))
			}
		}
		t.Logf("controller output (tail):\n%s", s.env.ControllerProcess().OutputTail(20))
	}
	if err := s.env.Close(); err != nil {
		t.Error(err)
	}
}

func (s *site) startBackends(t testing.TB, ctx context.Context) {
	t.Helper()
	for i := range servers {
		s.addServer(t, ctx, i+1)
	}
}

// addServer adds backend host srv<i> (1-based, at kubelab.BackendAddr(i))
// with its plain and PROXY v2 stand-ins.
func (s *site) addServer(t testing.TB, ctx context.Context, i int) {
	t.Helper()
	h, err := s.env.AddBackendHost(i)
	if err != nil {
		t.Fatal(err)
	}
	s.hosts[h.Name] = h
	s.startEchoes(t, ctx, h.Name)
}

// startEchoes (re)starts the plain and PROXY v2 stand-ins of server name.
func (s *site) startEchoes(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	s.echoes[name] = nil
	for _, b := range []struct {
		tcp, udp int
		proxy    bool
	}{{backendTCP, backendUDP, false}, {proxyTCP, proxyUDP, true}} {
		p, err := kubelab.StartBackend(ctx, s.hosts[name], binary(t, "pier-lab"), name,
			fmt.Sprintf(":%d", b.tcp), fmt.Sprintf(":%d", b.udp), b.proxy)
		if err != nil {
			t.Fatal(err)
		}
		s.echoes[name] = append(s.echoes[name], p)
	}
}

// startRelay (re)starts pier-relay on node i.
func (s *site) startRelay(t testing.TB, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.env.StartRelay(ctx, i, binary(t, "pier-relay"), "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	s.relays[i] = p
}

// writeEndpoints writes the backend Service's EndpointSlice (there is no
// endpoints controller in the lab): the servers in ready, with their ready
// condition (srv1 to srv9, at kubelab.BackendAddr); servers not in it are
// not listed.
func (s *site) writeEndpoints(t testing.TB, ready map[string]bool) {
	t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: backendSvc + "-lab", Labels: map[string]string{
			discoveryv1.LabelServiceName: backendSvc, discoveryv1.LabelManagedBy: "relaymode-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("calls-tcp"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(backendTCP))},
			{Name: ptr.To("calls-udp"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(int32(backendUDP))},
		},
	}
	for i := range 9 {
		name := fmt.Sprintf("srv%d", i+1)
		r, ok := ready[name]
		if !ok {
			continue
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{kubelab.BackendAddr(i + 1).Addr().String()},
			Hostname:   ptr.To(name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(r)},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := &discoveryv1.EndpointSlice{}
	switch err := s.env.Pier.Get(ctx, client.ObjectKeyFromObject(es), old); {
	case apierrors.IsNotFound(err):
		err = s.env.Pier.Create(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		es.ResourceVersion = old.ResourceVersion
		if err := s.env.Pier.Update(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
}

// relayAddrs waits for the addresses pier-controller gives the Relay (its
// status, from the LoadBalancer Service it owns for it).
func (s *site) relayAddrs(t testing.TB, r *v1alpha1.Relay) []netip.Addr {
	t.Helper()
	var addrs []netip.Addr
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := s.env.Pier.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		addrs = addrs[:0]
		for _, a := range r.Status.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				addrs = append(addrs, ip)
			}
		}
		return len(addrs) > 0, nil
	})
	if err != nil {
		t.Fatalf("relay %s got no address: %v (status %+v)", r.Name, err, r.Status)
	}
	var svc corev1.Service
	if err := s.env.Pier.Get(context.Background(), client.ObjectKey{Namespace: r.Namespace, Name: config.RelayServiceName(r.Name)}, &svc); err != nil {
		t.Fatalf("the Service pier-controller owns for relay %s: %v", r.Name, err)
	}
	t.Logf("relay %s/%s: %v (Service %s)", r.Namespace, r.Name, addrs, svc.Name)
	return addrs
}

// waitStatus waits until the controller counts the relays and backends.
func (s *site) waitStatus(t testing.TB, name string, relays, backends int32) {
	t.Helper()
	r := &v1alpha1.Relay{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := s.env.Pier.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, r); err != nil {
			return false, err
		}
		return r.Status.ReadyRelays == relays && r.Status.ReadyBackends == backends, nil
	})
	if err != nil {
		t.Fatalf("relay %s: status %d relays, %d backends, want %d and %d", name, r.Status.ReadyRelays, r.Status.ReadyBackends, relays, backends)
	}
}

// leases lists the Leases of a Relay, by holder.
func (s *site) leases(t testing.TB, relay string) map[string]coordinationv1.Lease {
	t.Helper()
	var list coordinationv1.LeaseList
	err := s.env.Pier.List(context.Background(), &list, client.InNamespace(kubelab.PierNamespace),
		client.MatchingLabels{v1alpha1.LabelRelayNamespace: ns, v1alpha1.LabelRelayName: relay})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]coordinationv1.Lease{}
	for _, l := range list.Items {
		out[ptr.Deref(l.Spec.HolderIdentity, "")] = l
	}
	return out
}

// waitLeases waits until n relays hold a Lease for the Relay.
func (s *site) waitLeases(t testing.TB, relay string, n int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return len(s.leases(t, relay)) == n, nil
	})
	if err != nil {
		t.Fatalf("relay %s: leases held by %v, want %d", relay, keys(s.leases(t, relay)), n)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
