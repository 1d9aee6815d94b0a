package l2mode

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pier-lb/pier/api/v1alpha1"

	"github.com/pier-lb/pier/e2e/kubelab"
	"github.com/pier-lb/pier/e2e/lab"
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

	macs := kubelab.ARPReplies(ctx, env.Site.Router, "eth1", v4, 3)
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
	env.StartEcho(t, binary(t, "pier-lab"), ":8443", ":16384")
	for _, a := range addrs {
		kubelab.Reach(t, env.Site.Client, "tcp", netip.AddrPortFrom(a, 8443))
		kubelab.Reach(t, env.Site.Client, "udp", netip.AddrPortFrom(a, 16384))
	}

	// The owner says so in a ServiceL2Status and an event, and counts what
	// it answered in its metrics.
	st := waitStatus(t, env, "calls", env.Site.Nodes[owner].Name)
	if !slices.Contains(st.Status.Addresses, v4.String()) || !slices.Contains(st.Status.Interfaces, "eth1") {
		t.Errorf("status %+v, want %s on eth1", st.Status, v4)
	}
	waitEvent(t, env, "calls", "AnnouncedByNode", env.Site.Nodes[owner].Name+" announces "+v4.String())
	metrics := scrape(t, env.Site.Nodes[owner], "127.0.0.1:7572")
	for _, want := range []string{`pier_l2_responses_sent_total{family="ipv4"}`, `pier_l2_owned_addresses{family="ipv4"} 1`, "pier_speaker_live_members 3"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("owner's metrics lack %s", want)
		}
	}
}

func waitEvent(t *testing.T, env *kubelab.Env, svc, reason, note string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := env.Pier.List(ctx, &list, client.InNamespace("default")); err != nil {
			return false, err
		}
		return slices.ContainsFunc(list.Items, func(e eventsv1.Event) bool {
			return e.Regarding.Name == svc && e.Reason == reason && strings.Contains(e.Note, note)
		}), nil
	})
	if err != nil {
		t.Errorf("no %s event %q on %s", reason, note, svc)
	}
}

// scrape reads /metrics from inside a node.
func scrape(t testing.TB, h *lab.Host, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.Dial}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, h.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
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
