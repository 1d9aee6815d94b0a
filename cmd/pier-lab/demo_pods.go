package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pier-lb/pier/e2e/podlab"
)

// demoPods builds the pods lab (kubelets, containerd, a lab registry),
// installs Pier with its chart from that registry, and shows a call and a
// TCP session to backend Pods through a Service's L2 address and through
// a Relay's address; everything goes when ctx ends.
func demoPods(ctx context.Context, log *slog.Logger, nodes int) error {
	env, err := podlab.Up(ctx, podlab.Options{Nodes: nodes, Logger: log})
	if err != nil {
		return err
	}
	defer env.Close()
	if err := env.Env.Describe(os.Stdout); err != nil {
		return err
	}
	if err := env.InstallPier(ctx, "lab"); err != nil {
		return err
	}
	if err := env.WaitRollout(ctx, podlab.Namespace, 4*time.Minute, []string{"pier-controller"}, []string{"pier-speaker", "pier-relay"}); err != nil {
		return err
	}
	fmt.Printf("Pier installed by helm from %s: kubectl --kubeconfig %s -n %s get pods -o wide\n\n",
		env.Registry, env.Cluster.Kubeconfig, podlab.Namespace)
	if err := demoPodsL2(ctx, env); err != nil {
		return err
	}
	if err := demoPodsRelay(ctx, env); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("tearing down")
	return nil
}

// demoPodsL2 exposes two calling-server Pods as a LoadBalancer Service and
// calls them through its address.
func demoPodsL2(ctx context.Context, env *podlab.Env) error {
	if err := env.DeployCallServers(ctx, "voice", "media", 2); err != nil {
		return err
	}
	addr, err := env.CreateCallService(ctx, "voice", "media", corev1.ServiceExternalTrafficPolicyCluster)
	if err != nil {
		return err
	}
	node, mac, err := env.WhoAnswers(ctx, addr)
	if err != nil {
		return err
	}
	fmt.Printf("Service voice/media got %s; %s answers ARP for it (%s).\n", addr, node, mac)
	call, err := podlab.StartCall(env.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		return err
	}
	answered(ctx, func() bool { return call.Answered() > 0 })
	sleep(ctx, 2*time.Second)
	fmt.Printf("A call through %s:%d: %v\n\n", addr, podlab.CallUDPPort, call.Stop())
	return nil
}

// demoPodsRelay puts a Relay with PROXY v2 in front of two more calling
// servers and shows the client address they see.
func demoPodsRelay(ctx context.Context, env *podlab.Env) error {
	if err := env.DeployProxyCallServers(ctx, "voice", "media-pp", 2); err != nil {
		return err
	}
	addr, err := env.CreateRelay(ctx, "voice", "calls", "media-pp")
	if err != nil {
		return err
	}
	if _, _, err := env.WhoAnswers(ctx, addr); err != nil {
		return err
	}
	fmt.Printf("Relay voice/calls (PROXY v2 to the Pods of voice/media-pp) got %s.\n", addr)
	call, err := podlab.StartCall(env.Site.Client, netip.AddrPortFrom(addr, podlab.CallUDPPort))
	if err != nil {
		return err
	}
	session := podlab.StartSession(env.Site.Client, netip.AddrPortFrom(addr, podlab.CallTCPPort))
	answered(ctx, func() bool { return call.Answered() > 0 && session.Echoes() > 0 })
	sleep(ctx, 2*time.Second)
	fmt.Printf("A call through %s:%d: %v\n", addr, podlab.CallUDPPort, call.Stop())
	fmt.Printf("A TCP session through %s:%d: %v\n", addr, podlab.CallTCPPort, session.Stop())
	fmt.Printf("Try: kubectl --kubeconfig %s -n voice get relay calls -o yaml. Ctrl-C tears it all down.\n", env.Cluster.Kubeconfig)
	return nil
}

// answered waits up to 30 s for cond: a new address is announced about a
// second before kube-proxy forwards it.
func answered(ctx context.Context, cond func() bool) {
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
