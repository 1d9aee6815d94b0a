package bgpmode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

const (
	routerASN = 64512
	nodeASN   = 64513
)

// Every node advertises the Service address to FRR, which installs an ECMP
// route; the client behind the router reaches servers on the nodes through
// it over TCP and UDP.
func TestBGPServiceReachable(t *testing.T) {
	prereq.Root(t)
	prereq.Tools(t, "vtysh")
	for _, d := range []string{"/usr/lib/frr/bgpd", "/usr/lib/frr/zebra"} {
		if _, err := os.Stat(d); err != nil {
			prereq.Missing(t, "needs %s (hack/deps.sh installs frr)", d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := kubelab.Up(ctx, kubelab.Options{
		Nodes: 3, ControllerBinary: binary(t, "pier-controller"), SpeakerBinary: binary(t, "pier-speaker"),
		SpeakerArgs: []string{"--local-vip"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range env.Speakers {
				t.Logf("speaker node%d output (tail):\n%s", i+1, p.OutputTail(30))
			}
		}
		env.Close()
	})
	frr := startFRR(t, env)
	configureBGP(t, env)
	env.StartEcho(t, binary(t, "pier-lab"), ":8443", ":8443")

	addr := createService(t, env, "bgp-calls")
	prefix := netip.PrefixFrom(addr, 32)
	var paths int
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		paths = frr.pathCount(prefix)
		return paths == 3, nil
	})
	if err != nil {
		t.Fatalf("FRR has %d paths for %s, want one per node (3)\n%s", paths, prefix, frr.vtysh("show bgp summary"))
	}
	for _, network := range []string{"tcp", "udp"} {
		kubelab.Reach(t, env.Site.Client, network, netip.AddrPortFrom(addr, 8443))
	}
}

type frr struct {
	t    *testing.T
	name string
}

// startFRR runs zebra and bgpd in the router namespace: AS 64512, every
// node a passive eBGP neighbour, multipath on.
func startFRR(t *testing.T, env *kubelab.Env) *frr {
	t.Helper()
	f := &frr{t: t, name: env.Lab.Prefix + "r"}
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	var sb strings.Builder
	fmt.Fprintf(&sb, "frr defaults traditional\nhostname %s\n!\nrouter bgp %d\n bgp router-id 198.51.100.1\n", f.name, routerASN)
	sb.WriteString(" no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n")
	for i := 1; i <= len(env.Site.Nodes); i++ {
		v4, _ := lab.NodeAddrs(i)
		fmt.Fprintf(&sb, " neighbor %s remote-as %d\n neighbor %s passive\n", v4.Addr(), nodeASN, v4.Addr())
	}
	sb.WriteString(" address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n")
	conf := filepath.Join(dir, "frr.conf")
	must(t, os.WriteFile(conf, []byte(sb.String()), 0o644))
	run := filepath.Join("/var/run/frr", f.name)
	must(t, os.MkdirAll(run, 0o755))
	t.Cleanup(func() { os.RemoveAll(run) })
	if out, err := exec.Command("chown", "frr:frr", run).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v: %s", run, err, out)
	}
	for _, d := range []string{"zebra", "bgpd"} {
		if _, err := env.Site.Router.Start("/usr/lib/frr/"+d, "-N", f.name, "-f", conf, "-i", filepath.Join(run, d+".pid")); err != nil {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := f.run("show bgp summary json")
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("FRR %s never answered vtysh", f.name)
	}
	return f
}

func (f *frr) run(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "-N", f.name, "-c", cmd).Output()
	return string(out), err
}

func (f *frr) vtysh(cmd string) string {
	out, err := f.run(cmd)
	if err != nil {
		return fmt.Sprintf("vtysh %q: %v", cmd, err)
	}
	return out
}

// pathCount is the number of paths FRR has for prefix.
func (f *frr) pathCount(prefix netip.Prefix) int {
	out, err := f.run("show bgp ipv4 unicast " + prefix.String() + " json")
	if err != nil {
		return 0
	}
	var r struct {
		Paths []json.RawMessage `json:"paths"`
	}
	if json.Unmarshal([]byte(out), &r) != nil {
		return 0
	}
	return len(r.Paths)
}

// configureBGP adds a pool in the BGP range, a BGPPeer for the router and
// a BGPAdvertisement of the pool.
func configureBGP(t *testing.T, env *kubelab.Env) {
	ctx := context.Background()
	ns := kubelab.PierNamespace
	must(t, env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns},
		Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/24"}, AutoAssign: ptrBool(false)},
	}))
	must(t, env.Pier.Create(ctx, &v1alpha1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "frr", Namespace: ns},
		Spec:       v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: "198.51.100.1"},
	}))
	must(t, env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{
		ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns},
		Spec:       v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}},
	}))
}

func ptrBool(b bool) *bool { return &b }

func createService(t *testing.T, env *kubelab.Env, name string) netip.Addr {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{v1alpha1.AnnotationAddressPool: "bgp"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{
				{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
				{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
			},
		},
	}
	must(t, env.Pier.Create(context.Background(), svc))
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Pier.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, err
		}
		addr = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		return true, nil
	})
	if err != nil {
		t.Fatalf("service %s got no address", name)
	}
	return addr
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
