package l2mode

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"
	"github.com/pier-lb/pier/e2e/kubelab"
)

// TestBalancedSpread: with spread Balanced, three Services' addresses on
// three nodes are answered by three different nodes, as the speakers'
// ServiceL2Status objects say; when one owner dies its address moves to a
// live node and no node answers for more than its share; when it comes
// back, the three nodes share the addresses again.
func TestBalancedSpread(t *testing.T) {
	env := up(t, kubelab.Options{Nodes: 3})
	ctx := context.Background()
	adv := &v1alpha1.L2Advertisement{}
	must(t, env.Pier.Get(ctx, client.ObjectKey{Namespace: kubelab.PierNamespace, Name: "lab-l2"}, adv))
	adv.Spec.Spread = v1alpha1.L2SpreadBalanced
	must(t, env.Pier.Update(ctx, adv))
	var addrs []netip.Addr
	for i := range 3 {
		addrs = append(addrs, createService(t, env, fmt.Sprintf("spread%d", i), func(*corev1.Service) {}))
	}
	owners := waitOwners(t, env, addrs, "three Services on three nodes", func(o map[netip.Addr]string) bool {
		return maxLoad(o) == 1
	})
	t.Logf("owners: %v", owners)
	waitL2Status(t, env, owners)

	victim := slices.Index(nodeNames(env), owners[addrs[0]])
	must(t, env.Speakers[victim].Signal(syscall.SIGKILL))
	must(t, env.Site.Nodes[victim].SetLink("eth1", false))
	dead := env.Site.Nodes[victim].Name
	after := waitOwners(t, env, addrs, dead+" dead", func(o map[netip.Addr]string) bool {
		for _, n := range o {
			if n == dead {
				return false
			}
		}
		return maxLoad(o) <= 2
	})
	t.Logf("owners with %s dead: %v", dead, after)

	must(t, env.Site.Nodes[victim].SetLink("eth1", true))
	if _, err := env.StartSpeaker(victim); err != nil {
		t.Fatal(err)
	}
	waitRejoined(t, env, victim)
	back := waitOwners(t, env, addrs, dead+" back", func(o map[netip.Addr]string) bool { return maxLoad(o) == 1 })
	t.Logf("owners with %s back: %v", dead, back)
	waitL2Status(t, env, back)
}

func nodeNames(env *kubelab.Env) []string {
	var out []string
	for _, n := range env.Site.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func maxLoad(owners map[netip.Addr]string) int {
	load := map[string]int{}
	for _, n := range owners {
		load[n]++
	}
	m := 0
	for _, l := range load {
		m = max(m, l)
	}
	return m
}

// waitOwners asks the router who answers ARP for each address until the
// answers satisfy ok, and returns them (address -> node name).
func waitOwners(t testing.TB, env *kubelab.Env, addrs []netip.Addr, what string, ok func(map[netip.Addr]string) bool) map[netip.Addr]string {
	t.Helper()
	var owners map[netip.Addr]string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		owners = map[netip.Addr]string{}
		for _, a := range addrs {
			node, _, err := env.WhoAnswers(ctx, a)
			if err != nil {
				return false, nil
			}
			owners[a] = node
		}
		return ok(owners), nil
	})
	if err != nil {
		t.Fatalf("%s: owners %v", what, owners)
	}
	return owners
}

// waitL2Status waits until the ServiceL2Status objects name the owners
// that answer ARP, one object per address.
func waitL2Status(t testing.TB, env *kubelab.Env, owners map[netip.Addr]string) {
	t.Helper()
	var got map[netip.Addr]string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.ServiceL2StatusList
		if err := env.Pier.List(ctx, &list, client.InNamespace(kubelab.PierNamespace)); err != nil {
			return false, nil
		}
		got = map[netip.Addr]string{}
		for _, st := range list.Items {
			for _, a := range st.Status.Addresses {
				got[netip.MustParseAddr(a)] = st.Status.Node
			}
		}
		return maps.Equal(got, owners), nil
	})
	if err != nil {
		t.Fatalf("ServiceL2Status says %v, ARP says %v", got, owners)
	}
}
