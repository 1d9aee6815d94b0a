package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/pier-lb/pier/e2e/cluster"
	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
	"github.com/pier-lb/pier/manifests"
)

// access is one question to the API server's authorizer: may the component
// do verb on resource (optionally /subresource and a name) in namespace
// ("" with all: every namespace; "" alone: cluster-scoped)?
type access struct {
	verb, resource, sub, ns string
	all                     bool
}

func (a access) args(sa string) []string {
	args := []string{"auth", "can-i", a.verb, a.resource, "--as=system:serviceaccount:pier-system:" + sa}
	if a.sub != "" {
		args = append(args, "--subresource="+a.sub)
	}
	switch {
	case a.all:
		args = append(args, "--all-namespaces")
	case a.ns != "":
		args = append(args, "--namespace="+a.ns)
	}
	return args
}

func (a access) String() string {
	where := a.ns
	if a.all {
		where = "all namespaces"
	}
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	return fmt.Sprintf("%s %s in %q", a.verb, r, where)
}

const (
	sys    = "pier-system"
	relays = "pier-relays"        // the relays' Leases, and nothing else
	whNS   = "pier-webhook"       // the webhook's certificate Secret, and nothing else
	pwNS   = "pier-bgp-passwords" // BGP password Secrets, and nothing else
)

// needs is what each component does (grep of the client calls, caches,
// event recorders, leader election and webhook certificate handling).
var needs = map[string][]access{
	"pier-controller": {
		{verb: "watch", resource: "services", all: true},
		{verb: "patch", resource: "services", sub: "status", ns: "default"},
		{verb: "patch", resource: "services", ns: "default"},
		{verb: "create", resource: "services", ns: "calls"},
		{verb: "delete", resource: "services", ns: "calls"},
		{verb: "list", resource: "namespaces"},
		{verb: "watch", resource: "relays.pier.dev", all: true},
		{verb: "update", resource: "relays.pier.dev", sub: "status", ns: "calls"},
		// The Relay of each Gateway served by pier-relay, and the
		// GatewayClass parameters (ConfigMaps in Pier's namespace).
		{verb: "create", resource: "relays.pier.dev", ns: "calls"},
		{verb: "update", resource: "relays.pier.dev", ns: "calls"},
		{verb: "delete", resource: "relays.pier.dev", ns: "calls"},
		{verb: "watch", resource: "configmaps", ns: sys},
		{verb: "list", resource: "endpointslices.discovery.k8s.io", all: true},
		{verb: "create", resource: "endpointslices.discovery.k8s.io", ns: "calls"},
		{verb: "update", resource: "endpointslices.discovery.k8s.io", ns: "calls"},
		{verb: "delete", resource: "endpointslices.discovery.k8s.io", ns: "calls"},
		{verb: "watch", resource: "nodes"},
		{verb: "create", resource: "events.events.k8s.io", ns: "default"},
		{verb: "create", resource: "validatingwebhookconfigurations"},
		{verb: "update", resource: "validatingwebhookconfigurations/pier-validating"},
		{verb: "watch", resource: "validatingwebhookconfigurations/pier-validating"},
		{verb: "watch", resource: "ipaddresspools.pier.dev", ns: sys},
		{verb: "patch", resource: "ipaddresspools.pier.dev", sub: "status", ns: sys},
		{verb: "watch", resource: "l2advertisements.pier.dev", ns: sys},
		{verb: "watch", resource: "bgppeers.pier.dev", ns: sys},
		{verb: "watch", resource: "bgpadvertisements.pier.dev", ns: sys},
		{verb: "create", resource: "leases", ns: sys},
		{verb: "update", resource: "leases/pier-controller", ns: sys},
		{verb: "watch", resource: "leases", ns: sys},
		{verb: "watch", resource: "leases", ns: relays},
		{verb: "list", resource: "leases", ns: relays},
		{verb: "create", resource: "secrets", ns: sys}, // the memberlist key, when absent
		{verb: "create", resource: "secrets", ns: whNS},
		{verb: "get", resource: "secrets/pier-webhook-cert", ns: whNS},
		{verb: "update", resource: "secrets/pier-webhook-cert", ns: whNS},
		{verb: "watch", resource: "secrets/pier-webhook-cert", ns: whNS},
		{verb: "create", resource: "events", ns: sys},
		// Gateway API (--gateway-api).
		{verb: "watch", resource: "gatewayclasses.gateway.networking.k8s.io"},
		{verb: "update", resource: "gatewayclasses.gateway.networking.k8s.io", sub: "status"},
		{verb: "patch", resource: "gatewayclasses.gateway.networking.k8s.io"}, // the finalizer
		{verb: "watch", resource: "gateways.gateway.networking.k8s.io", all: true},
		{verb: "update", resource: "gateways.gateway.networking.k8s.io", sub: "status", ns: "calls"},
		{verb: "watch", resource: "tcproutes.gateway.networking.k8s.io", all: true},
		{verb: "update", resource: "tcproutes.gateway.networking.k8s.io", sub: "status", ns: "calls"},
		{verb: "watch", resource: "udproutes.gateway.networking.k8s.io", all: true},
		{verb: "update", resource: "udproutes.gateway.networking.k8s.io", sub: "status", ns: "calls"},
		{verb: "list", resource: "referencegrants.gateway.networking.k8s.io", ns: "media"},
	},
	"pier-speaker": {
		{verb: "watch", resource: "services", all: true},
		{verb: "list", resource: "nodes"},
		{verb: "watch", resource: "endpointslices.discovery.k8s.io", all: true},
		{verb: "create", resource: "events.events.k8s.io", ns: "default"},
		{verb: "watch", resource: "ipaddresspools.pier.dev", ns: sys},
		{verb: "watch", resource: "l2advertisements.pier.dev", ns: sys},
		{verb: "watch", resource: "bgppeers.pier.dev", ns: sys},
		{verb: "watch", resource: "bgpadvertisements.pier.dev", ns: sys},
		{verb: "create", resource: "servicel2statuses.pier.dev", ns: sys},
		{verb: "delete", resource: "servicel2statuses.pier.dev", ns: sys},
		{verb: "update", resource: "servicel2statuses.pier.dev", sub: "status", ns: sys},
		{verb: "create", resource: "bgpsessionstatuses.pier.dev", ns: sys},
		{verb: "patch", resource: "bgpsessionstatuses.pier.dev", ns: sys},
		{verb: "delete", resource: "bgpsessionstatuses.pier.dev", ns: sys},
		{verb: "watch", resource: "bgpsessionstatuses.pier.dev", ns: sys},
		{verb: "update", resource: "bgpsessionstatuses.pier.dev", sub: "status", ns: sys},
		{verb: "create", resource: "bgpannouncementstatuses.pier.dev", ns: sys},
		{verb: "delete", resource: "bgpannouncementstatuses.pier.dev", ns: sys},
		{verb: "list", resource: "bgpannouncementstatuses.pier.dev", ns: sys},
		{verb: "update", resource: "bgpannouncementstatuses.pier.dev", sub: "status", ns: sys},
		{verb: "create", resource: "configurationstatuses.pier.dev", ns: sys},
		{verb: "update", resource: "configurationstatuses.pier.dev", sub: "status", ns: sys},
		// BGP passwords (BGPPeer passwordSecret), in their own namespace.
		{verb: "get", resource: "secrets", ns: pwNS},
		{verb: "list", resource: "secrets", ns: pwNS},
		{verb: "watch", resource: "secrets", ns: pwNS},
	},
	"pier-relay": {
		{verb: "watch", resource: "relays.pier.dev", all: true},
		{verb: "watch", resource: "endpointslices.discovery.k8s.io", all: true},
		{verb: "list", resource: "nodes"},
		{verb: "create", resource: "leases", ns: relays},
		{verb: "get", resource: "leases", ns: relays},
		{verb: "update", resource: "leases", ns: relays},
		{verb: "delete", resource: "leases", ns: relays},
		{verb: "create", resource: "configurationstatuses.pier.dev", ns: sys},
		{verb: "update", resource: "configurationstatuses.pier.dev", ns: sys},
		{verb: "update", resource: "configurationstatuses.pier.dev", sub: "status", ns: sys},
	},
}

// refused is what each component must not be able to do.
var refused = map[string][]access{
	"pier-controller": {
		{verb: "delete", resource: "nodes"},
		{verb: "list", resource: "secrets", ns: sys}, // only its own Secret, by name
		{verb: "get", resource: "secrets/pier-memberlist", ns: sys},
		{verb: "list", resource: "secrets", ns: whNS},
		{verb: "get", resource: "secrets/someone-elses", ns: whNS},
		{verb: "get", resource: "secrets", ns: pwNS},
		{verb: "get", resource: "secrets", ns: "default"},
		{verb: "update", resource: "validatingwebhookconfigurations/someone-elses"},
		{verb: "create", resource: "mutatingwebhookconfigurations"},
		{verb: "update", resource: "leases/someone-elses", ns: sys},
		{verb: "create", resource: "leases", ns: "default"},
		{verb: "update", resource: "leases", ns: relays}, // the relays' own
		{verb: "delete", resource: "leases", ns: relays},
		{verb: "update", resource: "ipaddresspools.pier.dev", ns: sys},
		{verb: "list", resource: "ipaddresspools.pier.dev", ns: "default"},
		{verb: "get", resource: "configmaps", ns: "default"},
		{verb: "create", resource: "pods", ns: sys},
		{verb: "create", resource: "clusterrolebindings"},
		// The Gateway API objects themselves belong to their users.
		{verb: "update", resource: "gateways.gateway.networking.k8s.io", ns: "calls"},
		{verb: "delete", resource: "tcproutes.gateway.networking.k8s.io", ns: "calls"},
		{verb: "create", resource: "referencegrants.gateway.networking.k8s.io", ns: "media"},
	},
	"pier-speaker": {
		{verb: "update", resource: "services", ns: "default"},
		{verb: "patch", resource: "services", sub: "status", ns: "default"},
		{verb: "get", resource: "secrets", ns: "default"},
		// Whatever else lands in Pier's namespace (other charts', operators'
		// Secrets); the memberlist key reaches the speaker as a volume.
		{verb: "get", resource: "secrets", ns: sys},
		{verb: "list", resource: "secrets", ns: sys},
		{verb: "watch", resource: "secrets", ns: sys},
		{verb: "get", resource: "secrets/pier-memberlist", ns: sys},
		// The webhook's serving key: a speaker could answer for the webhook.
		{verb: "get", resource: "secrets/pier-webhook-cert", ns: whNS},
		{verb: "list", resource: "secrets", ns: whNS},
		{verb: "update", resource: "nodes"},
		{verb: "create", resource: "ipaddresspools.pier.dev", ns: sys},
		{verb: "update", resource: "l2advertisements.pier.dev", ns: sys},
		{verb: "create", resource: "servicel2statuses.pier.dev", ns: "default"},
		{verb: "create", resource: "configurationstatuses.pier.dev", ns: "default"},
		{verb: "create", resource: "leases", ns: sys},
		{verb: "list", resource: "relays.pier.dev", all: true},
		{verb: "create", resource: "pods", ns: sys},
	},
	"pier-relay": {
		{verb: "get", resource: "secrets", ns: sys},
		{verb: "get", resource: "secrets", ns: pwNS},
		// The controller's leader Lease, and any other Lease outside the
		// relays' namespace.
		{verb: "update", resource: "leases/pier-controller", ns: sys},
		{verb: "delete", resource: "leases/pier-controller", ns: sys},
		{verb: "get", resource: "leases", ns: sys},
		{verb: "create", resource: "leases", ns: sys},
		{verb: "update", resource: "services", ns: "calls"},
		{verb: "create", resource: "leases", ns: "default"},
		{verb: "list", resource: "services", all: true},
		{verb: "create", resource: "events", ns: "calls"},
		{verb: "update", resource: "relays.pier.dev", sub: "status", ns: "calls"},
		{verb: "list", resource: "ipaddresspools.pier.dev", ns: sys},
		{verb: "create", resource: "bgpannouncementstatuses.pier.dev", ns: sys},
		{verb: "create", resource: "configurationstatuses.pier.dev", ns: "calls"},
		{verb: "update", resource: "nodes"},
	},
}

// TestRBAC installs Pier for real, from the kustomize base and from the
// chart, and asks the API server, as each component's ServiceAccount, for
// what it needs and what it must not have.
func TestRBAC(t *testing.T) {
	kubectlPath(t)
	for _, inst := range []struct {
		name  string
		apply func(*testing.T, *cluster.Cluster)
	}{{"kustomize", applyBase}, {"helm", applyChart}} {
		t.Run(inst.name, func(t *testing.T) {
			c := cluster.ForTest(t, cluster.Options{})
			// kubectl auth can-i asks only about resources the API
			// server serves.
			if err := manifests.InstallGatewayAPI(context.Background(), c.Config, manifests.GatewayAPIStandard); err != nil {
				t.Fatal(err)
			}
			inst.apply(t, c)
			checkRBAC(t, c)
		})
	}
}

func checkRBAC(t *testing.T, c *cluster.Cluster) {
	for sa, list := range needs {
		for _, a := range list {
			if !canI(t, c, sa, a) {
				t.Errorf("%s cannot %s", sa, a)
			}
		}
	}
	for sa, list := range refused {
		for _, a := range append(list, access{verb: "list", resource: "secrets", all: true}) {
			if canI(t, c, sa, a) {
				t.Errorf("%s can %s", sa, a)
			}
		}
	}
	// The Secrets the controller writes (the webhook's serving key) are
	// read by nobody else, wherever they live.
	for _, a := range needs["pier-controller"] {
		if a.verb != "update" || !strings.HasPrefix(a.resource, "secrets/") {
			continue
		}
		for _, sa := range []string{"pier-speaker", "pier-relay"} {
			if get := (access{verb: "get", resource: a.resource, ns: a.ns}); canI(t, c, sa, get) {
				t.Errorf("%s can %s", sa, get)
			}
		}
	}
}

// applyChart installs the chart's rendering for real (relays on), the
// way applyBase does the base.
func applyChart(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	kubectl := kubectlPath(t)
	run(t, nil, kubectl, kubeArgs(c, "create", "namespace", sys)...)
	data := run(t, nil, helmPath(t), "template", "pier", filepath.Join(repo, "charts", "pier"), "--namespace", sys,
		"--include-crds", "--set", "relay.enabled=true")
	run(t, data, kubectl, kubeArgs(c, "apply", "--server-side", "-f", "-")...)
	run(t, nil, kubectl, kubeArgs(c, "delete", "validatingwebhookconfiguration", "pier-validating")...)
}

// applyBase installs the base for real, except the webhook configuration:
// no webhook serves it here, and the tests below create Pier objects.
func applyBase(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	kubectl := kubectlPath(t)
	run(t, kustomize(t, "manifests/base"), kubectl, kubeArgs(c, "apply", "--server-side", "-f", "-")...)
	run(t, nil, kubectl, kubeArgs(c, "delete", "validatingwebhookconfiguration", "pier-validating")...)
}

func canI(t *testing.T, c *cluster.Cluster, sa string, a access) bool {
	t.Helper()
	out, err := tryRun(nil, kubectlPath(t), kubeArgs(c, a.args(sa)...)...)
	answer := strings.TrimSpace(string(out))
	var exit *exec.ExitError
	switch {
	case err == nil && answer == "yes":
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 1 && strings.HasPrefix(answer, "no"):
		return false
	}
	t.Fatalf("kubectl %s: %q, %v", strings.Join(a.args(sa), " "), answer, err)
	return false
}

// TestControllerRunsOnItsRBAC runs the real pier-controller with a token of
// its ServiceAccount: it must win its Lease, give a LoadBalancer Service
// an address from the pool and, with --gateway-api, program a Gateway
// (finalizer on its class included) without any request being refused.
// This proves the Role and ClusterRole are enough, not only that can-i
// says yes.
func TestControllerRunsOnItsRBAC(t *testing.T) {
	kubectl := kubectlPath(t)
	c := cluster.ForTest(t, cluster.Options{})
	applyBase(t, c)
	if err := manifests.InstallGatewayAPI(context.Background(), c.Config, manifests.GatewayAPIStandard); err != nil {
		t.Fatal(err)
	}
	bins, err := kubelab.BuildBinaries(t.TempDir(), "pier-controller")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := serviceAccountKubeconfig(t, c, "pier-controller")
	run(t, nil, kubectl, kubeArgs(c, "apply", "--server-side", "-k", filepath.Join(repo, "manifests", "overlays", "l2", "config"))...)

	ctx, cancel := context.WithCancel(context.Background())
	var logs lab.SyncBuffer
	// The namespaces as the manifests set them; the webhook on a loopback
	// URL (the API server runs outside any cluster network here).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	whAddr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bins["pier-controller"], "--kubeconfig", kubeconfig, "--namespace", sys,
		"--relay-lease-namespace="+relays, "--webhook-secret-namespace="+whNS,
		"--webhook-url=https://"+whAddr, "--webhook-addr="+whAddr, "--metrics-addr=0", "--health-addr=0", "--gateway-api")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pier-controller log:\n%s", logs.String())
		}
	})

	run(t, nil, kubectl, kubeArgs(c, "create", "service", "loadbalancer", "calls", "--tcp=8443:8443", "--namespace=default")...)
	var addr string
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		out, err := tryRun(nil, kubectl, kubeArgs(c, "get", "service", "calls", "--namespace=default",
			"-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")...)
		addr = strings.TrimSpace(string(out))
		return err == nil && addr != "", nil
	})
	if err != nil {
		t.Fatalf("Service got no address from a controller running on its own RBAC: %v", err)
	}
	ip, err := netip.ParseAddr(addr)
	lo, hi := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.250")
	if err != nil || ip.Less(lo) || hi.Less(ip) {
		t.Errorf("address %q is not from the l2 pool 198.51.100.200-250", addr)
	}
	holder := run(t, nil, kubectl, kubeArgs(c, "get", "lease", "pier-controller", "--namespace", sys, "-o", "jsonpath={.spec.holderIdentity}")...)
	if len(holder) == 0 {
		t.Error("Lease pier-controller has no holder")
	}
	// Pool status and the Service's event are written too; give them the
	// same generous deadline, then look for any refusal in the log.
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := tryRun(nil, kubectl, kubeArgs(c, "get", "ipaddresspool", "l2", "--namespace", sys, "-o", "jsonpath={.status.assignedIPv4}")...)
		return err == nil && strings.TrimSpace(string(out)) == "1", nil
	})
	if err != nil {
		t.Errorf("pool l2 status never counted the address: %v", err)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := tryRun(nil, kubectl, kubeArgs(c, "get", "events.events.k8s.io", "--namespace=default",
			"--field-selector=reason=IPAllocated", "-o", "name")...)
		return err == nil && len(bytes.TrimSpace(out)) > 0, nil
	})
	if err != nil {
		t.Errorf("no IPAllocated event for the Service: %v", err)
	}
	// The Secrets it creates: the speakers' memberlist key, the webhook's
	// certificate in its own namespace.
	for _, sec := range []struct{ ns, name string }{{sys, "pier-memberlist"}, {whNS, "pier-webhook-cert"}} {
		err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			_, err := tryRun(nil, kubectl, kubeArgs(c, "get", "secret", sec.name, "--namespace", sec.ns, "-o", "name")...)
			return err == nil, nil
		})
		if err != nil {
			t.Errorf("Secret %s/%s never created: %v", sec.ns, sec.name, err)
		}
	}
	gatewayOnItsRBAC(t, c)
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("pier-controller was refused something:\n%s", logs.String())
	}
}

const rbacGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: pier}
spec: {controllerName: pier.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: pier
  listeners: [{name: sip, protocol: TCP, port: 5061}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: sip, namespace: default}
spec:
  parentRefs: [{name: edge}]
  rules: [{backendRefs: [{name: calls, port: 8443}]}]
`

// gatewayOnItsRBAC: a Gateway with a TCPRoute to the Service "calls" is
// programmed (its own Service, slices, statuses) and its class gets the
// finalizer.
func gatewayOnItsRBAC(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	kubectl := kubectlPath(t)
	run(t, []byte(rbacGateway), kubectl, kubeArgs(c, "apply", "-f", "-")...)
	for _, q := range []struct{ what, args, want string }{
		{"Gateway programmed", `gateway edge --namespace=default -o jsonpath={.status.conditions[?(@.type=="Programmed")].status}`, "True"},
		{"route accepted", `tcproute sip --namespace=default -o jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}`, "True"},
		{"class finalizer", `gatewayclass pier -o jsonpath={.metadata.finalizers[0]}`, "gateway-exists-finalizer.gateway.networking.k8s.io"},
	} {
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			out, err := tryRun(nil, kubectl, kubeArgs(c, append([]string{"get"}, strings.Fields(q.args)...)...)...)
			return err == nil && strings.TrimSpace(string(out)) == q.want, nil
		})
		if err != nil {
			t.Errorf("%s: never %s: %v", q.what, q.want, err)
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig holding a fresh token of the
// ServiceAccount (TokenRequest), as the kubelet would mount in the Pod.
func serviceAccountKubeconfig(t *testing.T, c *cluster.Cluster, sa string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(sys).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", sa, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["pier"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["pier"] = &clientcmdapi.Context{Cluster: "pier", AuthInfo: sa, Namespace: sys}
	kc.CurrentContext = "pier"
	path := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
