package scenario_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/scenario"
)

// fakeSite answers as a cluster would; the checks' logic is what is
// tested here (the labs run them against real clusters).
type fakeSite struct {
	kube    client.Client
	macs    map[string]string // node: MAC
	answers []string          // ARP answers
	vtysh   string
}

func (f *fakeSite) Kube() client.Client { return f.kube }
func (f *fakeSite) ARPAnswers(context.Context, netip.Addr) ([]string, error) {
	return f.answers, nil
}
func (f *fakeSite) NodeMAC(_ context.Context, node string) (string, error) {
	if m, ok := f.macs[node]; ok {
		return m, nil
	}
	return "", fmt.Errorf("no node %s", node)
}
func (f *fakeSite) VTYSH(context.Context, string) (string, error) { return f.vtysh, nil }
func (f *fakeSite) Reach(context.Context, netip.Addr) (string, error) {
	return "echo-1", nil
}

func objects(t *testing.T, ip string) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "calls"}}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	pool := func(name string, addrs ...string) *v1alpha1.IPAddressPool {
		return &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: scenario.Namespace, Name: name},
			Spec: v1alpha1.IPAddressPoolSpec{Addresses: addrs}}
	}
	status := &v1alpha1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: scenario.Namespace, Name: "calls-w1",
		Labels: map[string]string{v1alpha1.LabelServiceName: "calls", v1alpha1.LabelServiceNamespace: "default"}}}
	status.Status.Node = "w1"
	node := func(name, ip string, labels map[string]string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
		return n
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(svc, status,
		pool("l2", "198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"), pool("bgp", "203.0.113.0/24"),
		node("cp", "198.51.100.2", map[string]string{corev1.LabelNodeExcludeBalancers: ""}),
		node("w1", "198.51.100.4", nil), node("w2", "198.51.100.3", nil)).Build()
}

var macs = map[string]string{"w1": "02:00:00:00:00:01", "w2": "02:00:00:00:00:02"}

func TestCheckL2(t *testing.T) {
	s := &fakeSite{kube: objects(t, "198.51.100.200"), macs: macs, answers: []string{"02:00:00:00:00:01"}}
	got, err := scenario.CheckL2(context.Background(), s, scenario.Service{Namespace: "default", Name: "calls", Pool: "l2"})
	if err != nil {
		t.Fatal(err)
	}
	want := scenario.L2Result{Addr: netip.MustParseAddr("198.51.100.200"), Node: "w1", MAC: "02:00:00:00:00:01", Backend: "echo-1"}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("CheckL2 (-want +got):\n%s", diff)
	}
}

// Failures that waiting cannot mend end the check at once, saying what
// was seen.
func TestCheckL2Fails(t *testing.T) {
	for _, tc := range []struct {
		name, ip string
		answers  []string
		want     string
	}{
		{"two MACs", "198.51.100.200", []string{"02:00:00:00:00:01", "02:00:00:00:00:02"}, "answered by 2 MACs [02:00:00:00:00:01 02:00:00:00:00:02], want only w1's"},
		{"not from the pool", "198.51.100.20", []string{"02:00:00:00:00:01"}, "got 198.51.100.20, which is not from pool l2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &fakeSite{kube: objects(t, tc.ip), macs: macs, answers: tc.answers}
			_, err := scenario.CheckL2(context.Background(), s, scenario.Service{Namespace: "default", Name: "calls", Pool: "l2"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckL2: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestCheckBGP(t *testing.T) {
	s := &fakeSite{kube: objects(t, "203.0.113.7"), macs: macs,
		vtysh: `{"prefix":"203.0.113.7/32","paths":[{"nexthops":[{"ip":"198.51.100.4","afi":"ipv4"}]},{"nexthops":[{"ip":"198.51.100.3"}]}]}`}
	got, err := scenario.CheckBGP(context.Background(), s, scenario.Service{Namespace: "default", Name: "calls", Pool: "bgp"})
	if err != nil {
		t.Fatal(err)
	}
	// The control plane, excluded from load-balancer traffic, is no next hop.
	want := scenario.BGPResult{Addr: netip.MustParseAddr("203.0.113.7"), NextHops: []string{"198.51.100.3", "198.51.100.4"}, Backend: "echo-1"}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("CheckBGP (-want +got):\n%s", diff)
	}
}

func TestParseNextHops(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []string
		err       bool
	}{
		{"no route", "{}", nil, false},
		{"ECMP", `{"paths":[{"nexthops":[{"ip":"198.51.100.4"}]},{"nexthops":[{"ip":"198.51.100.3"}]}]}`, []string{"198.51.100.3", "198.51.100.4"}, false},
		{"not JSON", "% Network not in table", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scenario.ParseNextHops(tc.out)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("next hops (-want +got):\n%s", diff)
			}
		})
	}
}
