package kind_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pier-lb/pier/e2e/kind"
	"github.com/pier-lb/pier/e2e/scenario"
)

var _ scenario.Site = (*kind.Site)(nil)

// fakeDocker records the commands it is given and answers with out and
// err.
type fakeDocker struct {
	calls []string
	out   string
	err   error
}

func (f *fakeDocker) run(_ context.Context, name string, args ...string) (string, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	return f.out, f.err
}

func newSite(t *testing.T, d *fakeDocker) *kind.Site {
	t.Helper()
	s, err := kind.New(kind.Options{Kube: fake.NewClientBuilder().Build(), Router: "pier-lab-frr", Client: "pier-lab-client", Port: 8080, Run: d.run})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var addr = netip.MustParseAddr("198.51.100.200")

func TestNewNeedsContainersAndPort(t *testing.T) {
	if _, err := kind.New(kind.Options{Kube: fake.NewClientBuilder().Build(), Router: "frr", Port: 8080}); err == nil {
		t.Error("New without a client container: no error")
	}
}

func TestSiteCommands(t *testing.T) {
	for _, tc := range []struct {
		name     string
		out      string
		call     func(context.Context, *kind.Site) (any, error)
		wantCall string
		want     any
	}{{
		name: "node MAC",
		out:  "02:42:C6:33:64:03\n",
		call: func(ctx context.Context, s *kind.Site) (any, error) {
			return s.NodeMAC(ctx, "pier-lab-worker")
		},
		wantCall: "docker exec pier-lab-worker cat /sys/class/net/eth0/address",
		want:     "02:42:c6:33:64:03",
	}, {
		name: "ARP",
		out:  "ARPING 198.51.100.200 from 198.51.100.9 eth0\nUnicast reply from 198.51.100.200 [02:42:C6:33:64:03]  0.071ms\n",
		call: func(ctx context.Context, s *kind.Site) (any, error) {
			return s.ARPAnswers(ctx, addr)
		},
		wantCall: "docker exec pier-lab-client arping -c 3 -w 5 -I eth0 198.51.100.200",
		want:     []string{"02:42:c6:33:64:03"},
	}, {
		name: "vtysh",
		out:  "{}\n",
		call: func(ctx context.Context, s *kind.Site) (any, error) {
			return s.VTYSH(ctx, "show bgp ipv4 unicast 203.0.113.1/32 json")
		},
		wantCall: "docker exec pier-lab-frr vtysh -c show bgp ipv4 unicast 203.0.113.1/32 json",
		want:     "{}\n",
	}, {
		name: "reach",
		out:  "echo-5d8f7-abcde",
		call: func(ctx context.Context, s *kind.Site) (any, error) {
			return s.Reach(ctx, addr)
		},
		wantCall: "docker exec pier-lab-client curl -fsS --max-time 5 http://198.51.100.200:8080/hostname",
		want:     "echo-5d8f7-abcde",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDocker{out: tc.out}
			got, err := tc.call(context.Background(), newSite(t, d))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tc.wantCall}, d.calls); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSiteErrors(t *testing.T) {
	ctx := context.Background()
	failed := errors.New("exit status 1")
	// arping ran and nobody answered: a result, not an error.
	d := &fakeDocker{out: "ARPING 198.51.100.200 from 198.51.100.9 eth0\nSent 3 probes (3 broadcast(s))\nReceived 0 response(s)\n", err: failed}
	if macs, err := newSite(t, d).ARPAnswers(ctx, addr); err != nil || len(macs) != 0 {
		t.Errorf("ARPAnswers with no reply = %v, %v; want none, no error", macs, err)
	}
	// docker could not run it.
	d = &fakeDocker{out: "Error response from daemon: No such container: pier-lab-client", err: failed}
	if _, err := newSite(t, d).ARPAnswers(ctx, addr); err == nil {
		t.Error("ARPAnswers without a client container: no error")
	}
	d = &fakeDocker{out: "cat: can't open '/sys/class/net/eth0/address'", err: failed}
	if _, err := newSite(t, d).NodeMAC(ctx, "pier-lab-worker"); err == nil {
		t.Error("NodeMAC when cat failed: no error")
	}
	d = &fakeDocker{out: "not a mac\n"}
	if _, err := newSite(t, d).NodeMAC(ctx, "pier-lab-worker"); err == nil || !strings.Contains(err.Error(), "pier-lab-worker") {
		t.Errorf("NodeMAC of garbage: %v, want an error naming the node", err)
	}
	d = &fakeDocker{out: "curl: (28) Connection timed out after 5001 milliseconds", err: failed}
	if _, err := newSite(t, d).Reach(ctx, addr); err == nil {
		t.Error("Reach when curl failed: no error")
	}
}

func TestParseARPing(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []string
	}{{
		name: "iputils, two MACs",
		out: `ARPING 198.51.100.200 from 198.51.100.9 eth0
Unicast reply from 198.51.100.200 [02:42:C6:33:64:03]  0.071ms
Unicast reply from 198.51.100.200 [02:42:C6:33:64:04]  0.090ms
Unicast reply from 198.51.100.200 [02:42:C6:33:64:03]  0.066ms
Sent 3 probes (1 broadcast(s))
Received 3 response(s)
`,
		want: []string{"02:42:c6:33:64:03", "02:42:c6:33:64:04"},
	}, {
		name: "Habets",
		out: `ARPING 198.51.100.200
60 bytes from 02:42:c6:33:64:03 (198.51.100.200): index=0 time=1.3 usec
60 bytes from 02:42:c6:33:64:03 (198.51.100.200): index=1 time=1.1 usec
`,
		want: []string{"02:42:c6:33:64:03"},
	}, {
		name: "no reply",
		out:  "ARPING 198.51.100.200 from 198.51.100.9 eth0\nSent 3 probes (3 broadcast(s))\nReceived 0 response(s)\n",
	}, {
		name: "a MAC outside a reply",
		out:  "ARPING 198.51.100.200 from 198.51.100.9 eth0 [02:42:c6:33:64:09]\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, kind.ParseARPing(tc.out)); diff != "" {
				t.Errorf("MACs (-want +got):\n%s", diff)
			}
		})
	}
}
