package l2mode

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"

	"github.com/pier-lb/pier/e2e/kubelab"
)

// One owner answers ARP and NDP for a Service's addresses, with exactly one
// MAC, and the client reaches servers on the owner through the addresses.
func TestOneOwnerAnswers(t *testing.T) {
	env := up(t, kubelab.Options{Nodes: 3, SpeakerArgs: []string{"--local-vip"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addrs, err := env.CreateDemoService(ctx, "calls")
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := addrs[0], addrs[1]
	mac := waitARP(t, env, v4, "any node", func(string) bool { return true })
	owner := nodeByMAC(t, env, mac)

	macs := arpMACs(ctx, env.Site.Router, "eth1", v4, 3)
	for _, m := range macs {
		if m != mac {
			t.Errorf("ARP replies from %v, want only the owner node%d's %s", macs, owner+1, mac)
			break
		}
	}
	if got := ndpMAC(ctx, env.Site.Router, "eth1", v6); got == "" {
		t.Errorf("no NDP answer for %s", v6)
	} else {
		t.Logf("NDP: %s answered by %s (node%d)", v6, got, nodeByMAC(t, env, got)+1)
	}

	// A server on the owner answers through the addresses (the speaker put
	// them on lo there, --local-vip), from a client behind the router.
	startEcho(t, env)
	for _, a := range addrs {
		reach(t, env.Site.Client, "tcp", netip.AddrPortFrom(a, 8443))
		reach(t, env.Site.Client, "udp", netip.AddrPortFrom(a, 16384))
	}

	// The owner says so in a ServiceL2Status and an event.
	st := waitStatus(t, env, "calls", env.Site.Nodes[owner].Name)
	if !slices.Contains(st.Status.Addresses, v4.String()) || !slices.Contains(st.Status.Interfaces, "eth1") {
		t.Errorf("status %+v, want %s on eth1", st.Status, v4)
	}
}

func waitStatus(t testing.TB, env *kubelab.Env, svc, node string) *v1alpha1.ServiceL2Status {
	t.Helper()
	var found *v1alpha1.ServiceL2Status
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list v1alpha1.ServiceL2StatusList
		if err := env.Pier.List(ctx, &list, client.InNamespace(kubelab.PierNamespace)); err != nil {
			return false, err
		}
		for i := range list.Items {
			if s := list.Items[i].Status; s.ServiceName == svc && s.Node == node {
				found = &list.Items[i]
			}
		}
		return found != nil, nil
	})
	if err != nil {
		t.Fatalf("no ServiceL2Status for %s on %s", svc, node)
	}
	return found
}
