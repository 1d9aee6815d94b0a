package bgpmode

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/e2e/prereq"
)

const (
	routerASN = 64512
	nodeASN   = 64513
	md5Key    = "bird-md5-key"
)

var (
	birdAddr    = netip.MustParsePrefix("198.51.100.2/24")
	routerAddr6 = netip.MustParseAddr("2001:db8:100::1")
	pool6       = netip.MustParsePrefix("2001:db8:203::/120")
)

// world is a site with Pier running (controller, three speakers), FRR on
// the router (eBGP over IPv4, iBGP over IPv6) and BIRD on the segment
// (iBGP with a TCP MD5 password).
type world struct {
	t    testing.TB
	env  *kubelab.Env
	frr  *kubelab.FRR
	bird *kubelab.BIRD
}

func requireRouters(t testing.TB) {
	t.Helper()
	prereq.Root(t)
	prereq.Tools(t, "vtysh", "bird", "birdc")
	for _, d := range []string{"/usr/lib/frr/bgpd", "/usr/lib/frr/zebra"} {
		if _, err := os.Stat(d); err != nil {
			prereq.Missing(t, "needs %s (hack/deps.sh installs frr)", d)
		}
	}
}

// newWorld starts the site, the routers and Pier; withBIRD adds BIRD.
func newWorld(t testing.TB, withBIRD bool, speakerArgs ...string) *world {
	t.Helper()
	w := startPier(t, 3, speakerArgs...)
	env := w.env
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	neighbors := append(env.NodeNeighbors(nodeASN, false), env.NodeNeighbors(routerASN, true)...)
	if w.frr, err = env.StartFRR(ctx, t.TempDir(), routerASN, neighbors); err != nil {
		t.Fatal(err)
	}
	if withBIRD {
		birdNeighbors := env.NodeNeighbors(nodeASN, false)
		for i := range birdNeighbors {
			birdNeighbors[i].Password = md5Key
		}
		if w.bird, err = env.StartBIRD(ctx, t.TempDir(), birdAddr, nodeASN, birdNeighbors); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// startPier starts a site of nodes with Pier's controller and speakers
// (speakerArgs added), no router yet; on failure the speakers' output and
// FRR's view, once started, go to the log.
func startPier(t testing.TB, nodes int, speakerArgs ...string) *world {
	t.Helper()
	requireRouters(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := kubelab.Up(ctx, kubelab.Options{
		Nodes: nodes, ControllerBinary: binary(t, "pier-controller"), SpeakerBinary: binary(t, "pier-speaker"),
		SpeakerArgs: append([]string{"--local-vip", "--bgp-warn-after", "3s"}, speakerArgs...),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, env: env}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range env.Speakers {
				t.Logf("speaker node%d output (tail):\n%s", i+1, p.OutputTail(40))
			}
			for _, cmd := range []string{"show bgp summary", "show bgp ipv6 unicast"} {
				if w.frr == nil {
					break
				}
				if out, err := w.frr.VTYSH(cmd); err == nil {
					t.Logf("FRR %s:\n%s", cmd, out)
				}
			}
		}
		if w.frr != nil {
			w.frr.Close()
		}
		env.Close()
	})
	return w
}

func ptrBool(b bool) *bool { return &b }

// configure installs the BGP pools, peers and advertisements: "bgp"
// (203.0.113.0/25) and "bulk" (198.19.0.0/21) plainly to every peer,
// "agg" (203.0.113.240/28, aggregated to /28) and "bgp6" with local
// preference 200, a community and a large community.
func (w *world) configure(withBIRD bool) {
	t, ctx, ns := w.t, context.Background(), kubelab.PierNamespace
	pools := map[string]string{"bgp": "203.0.113.0/25", "agg": "203.0.113.240/28", "bgp6": pool6.String(), "bulk": "198.19.0.0/21"}
	for name, cidr := range pools {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.IPAddressPoolSpec{Addresses: []string{cidr}, AutoAssign: ptrBool(false)},
		}))
	}
	timers := func(s v1alpha1.BGPPeerSpec) v1alpha1.BGPPeerSpec {
		s.HoldTime, s.KeepaliveTime = &metav1.Duration{Duration: 3 * time.Second}, &metav1.Duration{Duration: time.Second}
		s.ConnectTime = &metav1.Duration{Duration: time.Second}
		return s
	}
	peers := map[string]v1alpha1.BGPPeerSpec{
		"frr":  timers(v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: "198.51.100.1"}),
		"frr6": timers(v1alpha1.BGPPeerSpec{MyASN: routerASN, PeerASN: routerASN, PeerAddress: routerAddr6.String()}),
	}
	if withBIRD {
		// The password lives in the namespace of BGP passwords (the
		// speakers' default), the only one where speakers read Secrets; the
		// peer names the Secret only.
		must(t, w.env.Pier.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: config.DefaultPasswordNamespace}}))
		must(t, w.env.Pier.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "bird-md5", Namespace: config.DefaultPasswordNamespace},
			Data:       map[string][]byte{"password": []byte(md5Key)},
		}))
		peers["bird"] = timers(v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: nodeASN, PeerAddress: birdAddr.Addr().String(),
			PasswordSecret: &v1alpha1.SecretKeyRef{Name: "bird-md5"}})
	}
	for name, spec := range peers {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}))
	}
	lp := int64(200)
	advs := map[string]v1alpha1.BGPAdvertisementSpec{
		"bgp": {IPAddressPools: []string{"bgp", "bulk"}},
		"attrs": {IPAddressPools: []string{"agg", "bgp6"}, AggregationLength: ptr.To(int32(28)), LocalPref: &lp,
			Communities: []string{"65000:100", "large:65000:1:2"}},
	}
	for name, spec := range advs {
		must(t, w.env.Pier.Create(ctx, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}))
	}
}

// service is a LoadBalancer Service with 8443/TCP and 8443/UDP from pool.
func service(name, pool string, v6 bool) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{v1alpha1.AnnotationAddressPool: pool}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{
				{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
				{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 8443, TargetPort: intstr.FromInt32(8443)},
			},
		},
	}
	if v6 {
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	return svc
}

// createService creates a Service and waits for its address.
func (w *world) createService(name, pool string, v6 bool) netip.Addr {
	t := w.t
	t.Helper()
	svc := service(name, pool, v6)
	must(t, w.env.Pier.Create(context.Background(), svc))
	var addr netip.Addr
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := w.env.Pier.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
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

// createMany creates n Services from pool with 8 writers; it returns when
// the last create returned.
func (w *world) createMany(prefix, pool string, n int) error {
	return parallel(n, func(i int) error {
		return w.env.Pier.Create(context.Background(), service(fmt.Sprintf("%s-%d", prefix, i), pool, false))
	})
}

func (w *world) deleteMany(prefix string, n int) error {
	return parallel(n, func(i int) error {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: "default"}}
		return client.IgnoreNotFound(w.env.Pier.Delete(context.Background(), svc))
	})
}

func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// poll retries f every 50 ms until it returns nil or d passes (lab.Poll).
func poll(t testing.TB, what string, d time.Duration, f func() error) {
	t.Helper()
	lab.Poll(t, what, 50*time.Millisecond, d, f)
}

func nodeAddr(i int) string { v4, _ := lab.NodeAddrs(i); return v4.Addr().String() }

func nodeAddr6(i int) string { _, v6 := lab.NodeAddrs(i); return v6.Addr().String() }

// wantNextHops waits until FRR's route for p has exactly the given next
// hops (in any order).
func (w *world) wantNextHops(p netip.Prefix, want []string, d time.Duration) {
	w.t.Helper()
	want = slices.Sorted(slices.Values(want))
	poll(w.t, fmt.Sprintf("FRR next hops of %s", p), d, func() error {
		got, err := w.frr.NextHops(p)
		slices.Sort(got)
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("next hops %v, want %v", got, want)
		}
		return err
	})
}

// waitGone measures how long until FRR's route for p loses next hop nh.
func (w *world) waitGone(p netip.Prefix, nh string, d time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	poll(w.t, fmt.Sprintf("next hop %s gone from %s", nh, p), d, func() error {
		got, err := w.frr.NextHops(p)
		if err == nil && slices.Contains(got, nh) {
			err = fmt.Errorf("still %v", got)
		}
		return err
	})
	return time.Since(start)
}

// allNodes are the three nodes' IPv4 addresses.
func allNodes() []string { return []string{nodeAddr(1), nodeAddr(2), nodeAddr(3)} }

// restartSpeaker starts node i's (1-based) speaker again after it ended.
func (w *world) restartSpeaker(i int) {
	w.t.Helper()
	<-w.env.Speakers[i-1].Done()
	if _, err := w.env.StartSpeaker(i - 1); err != nil {
		w.t.Fatal(err)
	}
}

// metrics fetches node i's speaker metrics (port 7572 in its namespace).
func (w *world) metrics(i int) (map[string]string, error) {
	node := w.env.Site.Nodes[i-1]
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return node.Dial(ctx, network, addr)
		},
	}}
	resp, err := hc.Get("http://" + net.JoinHostPort(nodeAddr(i), "7572") + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			if k, v, ok := strings.Cut(line, " "); ok {
				out[k] = v
			}
		}
	}
	return out, sc.Err()
}

// sessionStatus reads the BGPSessionStatus of peer on node i.
func (w *world) sessionStatus(peer string, i int) (*v1alpha1.BGPSessionStatus, error) {
	var obj v1alpha1.BGPSessionStatus
	key := client.ObjectKey{Namespace: kubelab.PierNamespace, Name: fmt.Sprintf("%s-node%d", peer, i)}
	return &obj, w.env.Pier.Get(context.Background(), key, &obj)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
