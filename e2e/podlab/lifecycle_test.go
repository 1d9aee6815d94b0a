package podlab_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/config"
	"github.com/pier-lb/pier/e2e/podlab"
	"github.com/pier-lb/pier/e2e/scenario"
)

// relayName is the lifecycle's Relay, in front of the PROXY v2 servers.
const relayName = "calls"

// TestChartLifecycle is Pier as users run it: installed by its chart from
// the site's registry onto kubelets, serving a call to backend Pods through
// an L2 address, failing over when a speaker Pod goes, and removed by helm
// uninstall. The steps share one installation and run in order.
func TestChartLifecycle(t *testing.T) {
	e := cluster(t)
	ctx := context.Background()
	if err := e.InstallPier(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	uninstalled := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pier-system:\n%s", e.Describe(context.Background(), podlab.Namespace))
		}
		if !uninstalled {
			_, _ = e.Helm(context.Background(), "uninstall", "pier", "-n", podlab.Namespace, "--wait")
		}
	})
	if err := e.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		t.Fatal(err)
	}
	// kubectl logs reaches the kubelets, and every speaker waited to hear
	// from a peer (or for its timeout) once before it announced anything.
	logs, err := e.PodLogs(ctx, podlab.Namespace, "app.kubernetes.io/component=speaker", `"view settled"`, `"no peer reached`)
	if err != nil {
		t.Fatal(err)
	}
	for pod, lines := range logs {
		if len(lines) != 1 || !strings.Contains(lines[0], `"component":"members"`) {
			t.Errorf("speaker %s: %q, want one line saying its view settled", pod, lines)
		}
	}

	if err := e.DeployCallServers(ctx, "voice", "media", 2); err != nil {
		t.Fatal(err)
	}
	addr, err := e.CreateCallService(ctx, "voice", "media", corev1.ServiceExternalTrafficPolicyCluster)
	if err != nil {
		t.Fatal(err)
	}
	// The L2 scenario the kind lab runs too (e2e/scenario).
	l2, err := scenario.CheckL2(ctx, e.ScenarioSite(nil), scenario.Service{Namespace: "voice", Name: "media", Pool: "l2"})
	if err != nil {
		t.Fatal(err)
	}
	if l2.Addr != addr {
		t.Fatalf("Service voice/media: checked %s, created with %s", l2.Addr, addr)
	}
	owner := l2.Node
	t.Logf("%s answered by %s (%s) only; reached %s", addr, owner, l2.MAC, l2.Backend)
	call, err := podlab.StartCall(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		t.Fatal(err)
	}
	waitAnswers(t, call, 10)
	t.Logf("call through %s: %v", addr, call.Stop())

	if err := e.DeployProxyCallServers(ctx, "voice", "media-pp", 2); err != nil {
		t.Fatal(err)
	}
	relayAddr, err := e.CreateRelay(ctx, "voice", relayName, "media-pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("configuration status per node", func(t *testing.T) { configurationStatus(t, e) })
	t.Run("relay shows the client", func(t *testing.T) { relayShowsClient(t, e, relayAddr) })
	t.Run("bgp ecmp", func(t *testing.T) { bgpECMP(t, e) })
	t.Run("speaker pod deleted", func(t *testing.T) { speakerPodDeleted(t, e, addr, owner) })
	t.Run("owner node stopped", func(t *testing.T) { ownerNodeStopped(t, e, addr) })
	t.Run("upgrade under a call", func(t *testing.T) { upgradeUnderCall(t, e, addr, relayAddr, "lab2") })
	t.Run("rollback under a call", func(t *testing.T) { rollbackUnderCall(t, e, addr, relayAddr) })
	t.Run("relay deleted", func(t *testing.T) { relayDeleted(t, e) })
	uninstalled = true
	t.Run("uninstall leaves nothing", func(t *testing.T) { uninstall(t, e) })
}

// configurationStatus: the speaker and relay Pods, on their RBAC, write
// one valid ConfigurationStatus per node (every node runs both here).
func configurationStatus(t *testing.T, e *podlab.Env) {
	ctx := context.Background()
	nodes, err := e.Kubectl(ctx, "-n", podlab.Namespace, "get", "pods", "-l", "app.kubernetes.io/component=speaker",
		"-o", "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range strings.Fields(nodes) {
		want = append(want, "relay-"+n+"=true", "speaker-"+n+"=true")
	}
	slices.Sort(want)
	err = wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err := e.Kubectl(ctx, "-n", podlab.Namespace, "get", "configurationstatuses.pier.dev",
			"-o", "jsonpath={range .items[*]}{.metadata.name}={.status.valid}{\"\\n\"}{end}")
		got := strings.Fields(out)
		slices.Sort(got)
		return err == nil && slices.Equal(got, want), nil
	})
	if err != nil {
		out, _ := e.Kubectl(ctx, "-n", podlab.Namespace, "get", "configurationstatuses.pier.dev")
		t.Fatalf("configuration status: want %v valid, have:\n%s", want, out)
	}
}

// relayDeleted deletes the Relay as its user would before removing Pier
// (helm uninstall leaves objects users created): Pier deletes the Service
// it made for it, and with it the address.
func relayDeleted(t *testing.T, e *podlab.Env) {
	ctx := context.Background()
	if _, err := e.Kubectl(ctx, "-n", "voice", "delete", "relay", relayName, "--wait"); err != nil {
		t.Fatal(err)
	}
	svc := config.RelayServiceName(relayName)
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().Services("voice").Get(ctx, svc, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("Service voice/%s still there a minute after its Relay was deleted", svc)
	}
}

// uninstall removes Pier with helm: no address on any node's lo, no
// nftables table of Pier's, no Pier object left but the CRDs.
func uninstall(t *testing.T, e *podlab.Env) {
	ctx := context.Background()
	if _, err := e.Helm(ctx, "uninstall", "pier", "-n", podlab.Namespace, "--wait"); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitNoPods(ctx, podlab.Namespace, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		out, err := n.Host.Run(ctx, "ip", "-o", "addr", "show", "dev", "lo")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.Contains(line, " 127.0.0.1/8 ") && !strings.Contains(line, " ::1/128 ") {
				t.Errorf("%s: address left on lo: %s", n.Name, line)
			}
		}
		tables, err := n.Host.Run(ctx, "nft", "list", "tables")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tables, "pier") {
			t.Errorf("%s: nftables tables left: %s", n.Name, tables)
		}
	}
	for _, kind := range []string{"ipaddresspools", "l2advertisements", "bgppeers", "bgpadvertisements", "relays", "servicel2statuses", "bgpsessionstatuses",
		"bgpannouncementstatuses", "configurationstatuses"} {
		out, err := e.Kubectl(ctx, "get", kind+".pier.dev", "-A", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("%s left after uninstall: %s", kind, out)
		}
	}
}

// speakerPodDeleted deletes the speaker Pod of the node that answers for
// addr: the call goes on (through another node, then back when the new Pod
// is up) and no request is ever answered by two MACs.
func speakerPodDeleted(t *testing.T, e *podlab.Env, addr netip.Addr, owner string) {
	ctx := context.Background()
	watch, call := startWatching(t, e, addr)
	pod, err := e.PodOn(ctx, podlab.Namespace, "app.kubernetes.io/component=speaker", owner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kubectl(ctx, "-n", podlab.Namespace, "delete", "pod", pod); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitRollout(ctx, podlab.Namespace, 2*time.Minute, nil, []string{"pier-speaker"}); err != nil {
		t.Fatal(err)
	}
	settle(t, call)
	checkWatching(t, e, watch, call)
}

// ownerNodeStopped stops the node that answers for addr as a power loss
// would (kubelet, containerd and every container killed): another node
// answers for the address and the call is answered again; the node then
// comes back and its Pods run again.
func ownerNodeStopped(t *testing.T, e *podlab.Env, addr netip.Addr) {
	ctx := context.Background()
	owner, _, err := e.WhoAnswers(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	watch, call := startWatching(t, e, addr)
	n := e.Node(owner)
	stopped := time.Now()
	n.Stop()
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		now, _, err := e.WhoAnswers(ctx, addr)
		return err == nil && now != owner, nil
	})
	if err != nil {
		t.Fatalf("nobody took %s over from stopped %s", addr, owner)
	}
	t.Logf("%s answered by another node %v after %s stopped", addr, time.Since(stopped).Round(time.Millisecond), owner)
	// A call to a server on the stopped node waits for its endpoint to go
	// (the node's Pods become not ready when the node is marked NotReady).
	waitAnswersWithin(t, call, 10, 2*time.Minute)
	checkWatching(t, e, watch, call)
	if err := e.RestartNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitRollout(ctx, podlab.Namespace, 3*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		t.Fatal(err)
	}
	// The node's calling servers too: a later step that sees one come back
	// would see the Relay's backends change under its call.
	if err := e.WaitRollout(ctx, "voice", 3*time.Minute, []string{"media", "media-pp"}, nil); err != nil {
		t.Fatal(err)
	}
}

// upgradeUnderCall upgrades Pier to tag while a call runs through addr
// and a call and its TCP session through the Relay at relayAddr: speakers
// and relays roll node by node, the Services keep their addresses, the
// calls go on (the relay call on its server) and no request is answered
// by two MACs.
func upgradeUnderCall(t *testing.T, e *podlab.Env, addr, relayAddr netip.Addr, tag string) {
	ctx := context.Background()
	watch, call := startWatching(t, e, addr)
	relay := startRelayTraffic(t, e, relayAddr)
	start := time.Now()
	args := append([]string{"upgrade", "pier", "charts/pier", "-n", podlab.Namespace, "--reuse-values"}, e.ChartValues(tag)...)
	if _, err := e.Helm(ctx, args...); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade to %s rolled out in %v", tag, time.Since(start).Round(time.Millisecond))
	settle(t, call)
	relay.check(t)
	checkWatching(t, e, watch, call)
	checkAddress(t, e, "voice", "media", addr)
	checkAddress(t, e, "voice", config.RelayServiceName(relayName), relayAddr)
}

// rollbackUnderCall is helm rollback to the first release, under calls
// as upgradeUnderCall.
func rollbackUnderCall(t *testing.T, e *podlab.Env, addr, relayAddr netip.Addr) {
	ctx := context.Background()
	watch, call := startWatching(t, e, addr)
	relay := startRelayTraffic(t, e, relayAddr)
	if _, err := e.Helm(ctx, "rollback", "pier", "1", "-n", podlab.Namespace); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		t.Fatal(err)
	}
	settle(t, call)
	relay.check(t)
	checkWatching(t, e, watch, call)
	checkAddress(t, e, "voice", "media", addr)
	checkAddress(t, e, "voice", config.RelayServiceName(relayName), relayAddr)
}

func startWatching(t testing.TB, e *podlab.Env, addr netip.Addr) (*podlab.ARPWatch, *podlab.Call) {
	t.Helper()
	watch, err := podlab.StartARPWatch(context.Background(), e.Site.Router, "eth1", addr)
	if err != nil {
		t.Fatal(err)
	}
	call, err := podlab.StartCall(e.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		t.Fatal(err)
	}
	waitAnswers(t, call, 10)
	return watch, call
}

// settle lets the call run two more seconds after a change and requires
// it to be answered again.
func settle(t testing.TB, call *podlab.Call) {
	t.Helper()
	waitAnswers(t, call, 10)
	time.Sleep(2 * time.Second)
}

// checkWatching ends the call and the ARP watch: the call must have been
// answered to the end and ARP too. Requests answered by two MACs are
// reported, not failed: a leaving speaker answers on for leaveGrace
// (speaker/node.go) so that the handover has no gap, and a returning one
// claims its addresses back before the interim owner has let go; the
// benchmark in this package measures them.
func checkWatching(t testing.TB, e *podlab.Env, watch *podlab.ARPWatch, call *podlab.Call) (podlab.CallStats, podlab.ARPStats) {
	t.Helper()
	cs, as := call.Stop(), watch.Stop()
	t.Logf("call: %v; ARP: %v", cs, as)
	if as.Dual > 0 {
		logMembership(t, e)
	}
	if len(as.MACs) == 0 || as.Requests == as.Unanswered {
		t.Errorf("nobody answered ARP: %v", as)
	}
	if cs.Answered == 0 {
		t.Errorf("call never answered: %v", cs)
	}
	return cs, as
}

// logMembership logs what the running speakers said about their peers and
// the addresses they took and handed over: two MACs for one address mean
// two speakers believed they owned it.
func logMembership(t testing.TB, e *podlab.Env) {
	t.Helper()
	logs, err := e.PodLogs(context.Background(), podlab.Namespace, "app.kubernetes.io/component=speaker",
		"member gone", "member joined", "Suspect", "Marking", "Refuting", "view settled", "no peer reached",
		`"taking over"`, `"handing over"`)
	if err != nil {
		t.Logf("speaker logs: %v", err)
		return
	}
	for pod, lines := range logs {
		t.Logf("speaker %s, membership and ownership (%d lines, last 30):\n%s", pod, len(lines), strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

func checkAddress(t testing.TB, e *podlab.Env, ns, name string, addr netip.Addr) {
	t.Helper()
	got, err := e.WaitServiceAddress(context.Background(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if got != addr {
		t.Errorf("Service %s/%s: address moved from %s to %s", ns, name, addr, got)
	}
}

// waitAnswers waits until the call has n more answers.
func waitAnswers(t testing.TB, c *podlab.Call, n int) {
	t.Helper()
	waitAnswersWithin(t, c, n, time.Minute)
}

func waitAnswersWithin(t testing.TB, c *podlab.Call, n int, timeout time.Duration) {
	t.Helper()
	want := c.Answered() + n
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return c.Answered() >= want, nil
	})
	if err != nil {
		t.Fatalf("call not answered: %v", c.Stats(time.Now()))
	}
}
