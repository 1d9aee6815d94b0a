package l2

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestARPAnswersOnlyWhileOwned(t *testing.T) {
	s := newSite(t, 1, "arping")
	sp := s.speakers[0]
	a := start(t, sp, Options{})
	want := []string{mac(t, sp, "eth1")}

	if got := arping(t, s.client, vip4); len(got) != 0 {
		t.Fatalf("before Set: replies from %v, want none", got)
	}
	begin := time.Now()
	set(t, a, on("eth1", vip4)...)
	t.Logf("Set took %s", time.Since(begin))
	if diff := cmp.Diff(want, arping(t, s.client, vip4)); diff != "" {
		t.Errorf("MACs answering (-want +got):\n%s", diff)
	}
	if got := arping(t, s.client, netip.MustParseAddr("198.51.100.201")); len(got) != 0 {
		t.Errorf("an address not owned got replies from %v", got)
	}
	set(t, a)
	if got := arping(t, s.client, vip4); len(got) != 0 {
		t.Errorf("after Set(nil): replies from %v, want none", got)
	}
	if got := a.Owned(); len(got) != 0 {
		t.Errorf("Owned after Set(nil) = %v", got)
	}
}

func TestNDPAnswersMulticastAndUnicast(t *testing.T) {
	s := newSite(t, 1, "ndisc6")
	sp := s.speakers[0]
	a := start(t, sp, Options{})
	want := []string{mac(t, sp, "eth1")}

	set(t, a, on("eth1", vip6)...)
	if diff := cmp.Diff(want, ndisc6(t, s.client, vip6)); diff != "" {
		t.Errorf("MACs answering multicast NS (-want +got):\n%s", diff)
	}
	// Unicast: let the client's kernel probe its entry (neighbour
	// unreachability detection sends a unicast NS to the address itself).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.client.Run(ctx, "ip", "-6", "neigh", "replace", vip6.String(), "dev", "eth1",
		"lladdr", want[0], "nud", "probe"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the client's entry to be confirmed by a unicast probe", func() bool {
		out, _ := s.client.Run(ctx, "ip", "-6", "neigh", "show", vip6.String(), "dev", "eth1")
		return slices.Contains(strings.Fields(out), "REACHABLE")
	})

	set(t, a)
	if got := ndisc6(t, s.client, vip6); len(got) != 0 {
		t.Errorf("after Set(nil): answers from %v, want none", got)
	}
}
