package vip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// fakeNetlink is a link in memory; AddrAdd fails for the addresses in fail.
type fakeNetlink struct {
	addrs []netlink.Addr
	fail  map[netip.Addr]error
}

func (f *fakeNetlink) LinkByName(name string) (netlink.Link, error) {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: 1}}, nil
}

func (f *fakeNetlink) AddrList(netlink.Link, int) ([]netlink.Addr, error) {
	return slices.Clone(f.addrs), nil
}

func (f *fakeNetlink) AddrAdd(_ netlink.Link, a *netlink.Addr) error {
	ip, _ := netip.AddrFromSlice(a.IP)
	if err := f.fail[ip.Unmap()]; err != nil {
		return err
	}
	f.addrs = append(f.addrs, *a)
	return nil
}

func (f *fakeNetlink) AddrDel(_ netlink.Link, a *netlink.Addr) error {
	f.addrs = slices.DeleteFunc(f.addrs, func(o netlink.Addr) bool { return o.Equal(*a) })
	return nil
}

func (f *fakeNetlink) list() []string {
	var out []string
	for _, a := range f.addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func newFake(t *testing.T, state string) (*VIPs, *fakeNetlink) {
	t.Helper()
	lo := &fakeNetlink{addrs: []netlink.Addr{{IPNet: &net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)}, Label: "lo"}}}
	v, err := New(Options{Netlink: lo, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	return v, lo
}

func TestOneFailureDoesNotStopOthers(t *testing.T) {
	state := filepath.Join(t.TempDir(), "vips.json")
	v, lo := newFake(t, state)
	boom := errors.New("boom")
	lo.fail = map[netip.Addr]error{netip.MustParseAddr("198.51.100.201"): boom}
	err := v.Set(context.Background(), addrs("198.51.100.200", "198.51.100.201", "2001:db8:100::200"))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "add 198.51.100.201 on lo: boom") {
		t.Fatalf("Set error %v, want one naming the address and link", err)
	}
	want := []string{"127.0.0.1/8 lo", "198.51.100.200/32 lo:pier", "2001:db8:100::200/128"}
	if diff := cmp.Diff(want, lo.list()); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}
	got, err := readState(state)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(addrs("198.51.100.200", "2001:db8:100::200"), got, addrCmp); diff != "" {
		t.Errorf("state records a failed add (-want +got):\n%s", diff)
	}

	lo.fail = nil // the next Set retries
	if err := v.Set(context.Background(), addrs("198.51.100.200", "198.51.100.201", "2001:db8:100::200")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(addrs("198.51.100.200", "198.51.100.201", "2001:db8:100::200"), v.Current(), addrCmp); diff != "" {
		t.Errorf("Current after retry (-want +got):\n%s", diff)
	}
}

func TestCancelledSetChangesNothing(t *testing.T) {
	v, lo := newFake(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Set(ctx, addrs("198.51.100.200")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set error %v, want context.Canceled", err)
	}
	if diff := cmp.Diff([]string{"127.0.0.1/8 lo"}, lo.list()); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}
}

func TestCorruptStateIsReportedAndReplaced(t *testing.T) {
	state := filepath.Join(t.TempDir(), "vips.json")
	if err := os.WriteFile(state, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, _ := newFake(t, state)
	err := v.Set(context.Background(), addrs("198.51.100.200"))
	if err == nil || !strings.Contains(err.Error(), state) {
		t.Fatalf("Set error %v, want one naming the state file", err)
	}
	if diff := cmp.Diff(addrs("198.51.100.200"), v.Current(), addrCmp); diff != "" {
		t.Errorf("Current (-want +got):\n%s", diff)
	}
	if got, err := readState(state); err != nil || !slices.Equal(got, addrs("198.51.100.200")) {
		t.Errorf("state %v, %v: not replaced", got, err)
	}
}
