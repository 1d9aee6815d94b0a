package l2mode

import (
	"context"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// Two L2 segments: node1 only on the first, node2 and node3 on both. An
// address of the second segment's pool is only ever announced by node2 or
// node3, also after its owner dies.
func TestTwoSegments(t *testing.T) {
	env := up(t, kubelab.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	segB, err := env.Lab.AddSwitch("l2b")
	if err != nil {
		t.Fatal(err)
	}
	must(t, segB.Connect(env.Site.Router, "eth3", netip.MustParsePrefix("198.19.1.1/24")))
	for i := 1; i <= 2; i++ {
		must(t, segB.Connect(env.Site.Nodes[i], "eth2", netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 1, byte(11 + i)}), 24)))
	}
	must(t, env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "seg-b", Namespace: kubelab.PierNamespace},
		Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{"198.19.1.200-198.19.1.250"}},
	}))
	addr := createService(t, env, "seg-b-svc", func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "seg-b"}
	})
	start := time.Now()
	p := startProber(t, env.Site.Router, "eth3", addr, 10*time.Millisecond)
	onB := []string{macOf(t, env.Site.Nodes[1], "eth2"), macOf(t, env.Site.Nodes[2], "eth2")}
	first := waitProbe(t, p, start, "", onB)
	owner := slices.Index(onB, first) + 1 // node index
	must(t, env.Speakers[owner].Signal(syscall.SIGKILL))
	killed := time.Now()
	next := waitProbe(t, p, killed, first, onB)
	t.Logf("%s: node%d, then node%d after node%d's speaker was killed", addr, owner+1, slices.Index(onB, next)+2, owner+1)
	if macs := kubelab.ARPReplies(ctx, env.Site.Router, "eth1", addr, 2); len(macs) > 0 {
		t.Errorf("%s answered on the first segment by %v", addr, macs)
	}
	for _, m := range p.macsSince(start) {
		if !slices.Contains(onB, m) {
			t.Errorf("%s answered by %s, not a node of the second segment", addr, m)
		}
	}
}

// externalTrafficPolicy Local: only a node with a ready endpoint announces;
// when the endpoint moves, the announcement follows. Then, in the same
// site, an advertisement that requires ready endpoints: the owner of a
// Service with policy Cluster stops answering when its last endpoint stops
// being ready and answers again when one is.
func TestLocalTrafficPolicy(t *testing.T) {
	env := up(t, kubelab.Options{Nodes: 3})
	addr := createService(t, env, "local", func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	p := startProber(t, env.Site.Router, "eth1", addr, 10*time.Millisecond)
	for _, node := range []int{2, 0} {
		setEndpoint(t, env, "local", env.Site.Nodes[node].Name)
		since := time.Now()
		want := macOf(t, env.Site.Nodes[node], "eth1")
		waitProbe(t, p, since, "", []string{want})
		// Once the endpoint's node answers, nobody else does.
		settled := time.Now().Add(200 * time.Millisecond)
		waitProbe(t, p, settled, "", []string{want})
		if macs := p.macsSince(settled); len(macs) != 1 || macs[0] != want {
			t.Errorf("endpoint on node%d: answered by %v, want only %s", node+1, macs, want)
		}
	}

	adv := &v1alpha1.L2Advertisement{}
	must(t, env.Pier.Get(context.Background(), client.ObjectKey{Namespace: kubelab.PierNamespace, Name: "lab-l2"}, adv))
	adv.Spec.RequireReadyEndpoints = true
	must(t, env.Pier.Update(context.Background(), adv))
	cluster := createService(t, env, "cluster", func(*corev1.Service) {})
	node2 := env.Site.Nodes[1].Name
	setEndpointReady(t, env, "cluster", node2, true)
	owner := waitARP(t, env, cluster, "a node", func(string) bool { return true })
	setEndpointReady(t, env, "cluster", node2, false)
	waitSilent(t, env, cluster, "a Service without ready endpoints")
	// Its status says why, from the node that would answer.
	ownerNode := env.Site.Nodes[nodeByMAC(t, env, owner)].Name
	waitNotAnnounced(t, env, "cluster", ownerNode, v1alpha1.NotAnnouncedNoReadyEndpoints)
	setEndpointReady(t, env, "cluster", node2, true)
	waitARP(t, env, cluster, "the owner, the endpoint ready again,", func(m string) bool { return m == owner })
	waitNotAnnounced(t, env, "cluster", ownerNode, "")
	// The Local Service's endpoint on node1 is ready: still answered.
	waitProbe(t, p, time.Now(), "", []string{macOf(t, env.Site.Nodes[0], "eth1")})
}

// waitNotAnnounced waits until Service default/svc has one
// ServiceL2Status, node's, whose notAnnounced is reason.
func waitNotAnnounced(t testing.TB, env *kubelab.Env, svc, node, reason string) {
	t.Helper()
	var got []v1alpha1.ServiceL2StatusStatus
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.ServiceL2StatusList
		if err := env.Pier.List(ctx, &list, client.InNamespace(kubelab.PierNamespace),
			client.MatchingLabels{v1alpha1.LabelServiceName: svc}); err != nil {
			return false, nil
		}
		got = got[:0]
		for _, o := range list.Items {
			got = append(got, o.Status)
		}
		return len(got) == 1 && got[0].Node == node && got[0].NotAnnounced == reason, nil
	})
	if err != nil {
		t.Fatalf("ServiceL2Status of %s: %+v, want one of %s saying %q", svc, got, node, reason)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// createService creates a single-stack LoadBalancer Service and returns
// its address.
func createService(t testing.TB, env *kubelab.Env, name string, mutate func(*corev1.Service)) netip.Addr {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)}},
		},
	}
	mutate(svc)
	must(t, env.Pier.Create(context.Background(), svc))
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return false, err
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, nil
		}
		addr = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		return true, nil
	})
	if err != nil {
		t.Fatalf("service %s got no address", name)
	}
	return addr
}

// setEndpoint makes node the only one with a ready endpoint of svc.
func setEndpoint(t testing.TB, env *kubelab.Env, svc, node string) {
	t.Helper()
	setEndpointReady(t, env, svc, node, true)
}

// setEndpointReady makes svc's only endpoint one on node, ready or not.
func setEndpointReady(t testing.TB, env *kubelab.Env, svc, node string, ready bool) {
	t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-lab", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "pier-lab",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{"198.51.100.99"}, NodeName: ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
		}},
	}
	ctx := context.Background()
	old := &discoveryv1.EndpointSlice{}
	if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(es), old); err == nil {
		old.Endpoints = es.Endpoints
		must(t, env.Pier.Update(ctx, old))
		return
	}
	must(t, env.Pier.Create(ctx, es))
}

// waitProbe waits for a reply after since from one of want (and not from
// not), and returns its MAC.
func waitProbe(t testing.TB, p *prober, since time.Time, not string, want []string) string {
	t.Helper()
	var got string
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, r := range p.replies {
			if r.at.After(since) && r.mac != not && slices.Contains(want, r.mac) {
				got = r.mac
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no reply from %v since %s (seen: %v)", want, since.Format(time.StampMilli), p.macsSince(since))
	}
	return got
}
