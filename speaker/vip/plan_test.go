package vip

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestWanted(t *testing.T) {
	in := []netip.Addr{
		netip.MustParseAddr("198.51.100.201"),
		netip.MustParseAddr("::ffff:198.51.100.200"), // unmapped
		netip.MustParseAddr("198.51.100.201"),        // duplicate
		netip.MustParseAddr("2001:db8:100::200"),
		{},
		netip.MustParseAddr("0.0.0.0"),
		netip.MustParseAddr("127.0.0.2"),
		netip.MustParseAddr("::1"),
		netip.MustParseAddr("224.0.0.1"),
		netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("2001:db8::1%eth0"),
	}
	got, errs := wanted(in, "lo")
	if diff := cmp.Diff(addrs("198.51.100.200", "198.51.100.201", "2001:db8:100::200"), got, addrCmp); diff != "" {
		t.Errorf("wanted (-want +got):\n%s", diff)
	}
	if len(errs) != 7 {
		t.Fatalf("got %d errors, want 7: %v", len(errs), errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNotVIP) {
			t.Errorf("error %v is not ErrNotVIP", err)
		}
	}
	if got, want := errs[2].Error(), "add 127.0.0.2 on lo: "+ErrNotVIP.Error(); got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

func TestHeld(t *testing.T) {
	onLink := map[netip.Addr]found{
		netip.MustParseAddr("198.51.100.200"):    {host: true, label: "lo:pier"},
		netip.MustParseAddr("198.51.100.201"):    {host: true, label: "lo"},  // label changed: not ours
		netip.MustParseAddr("198.51.100.202"):    {host: false},              // only a wider prefix
		netip.MustParseAddr("2001:db8:100::200"): {host: true},               // IPv6 has no label
		netip.MustParseAddr("127.0.0.1"):         {host: false, label: "lo"}, // never recorded
	}
	owned := addrs("198.51.100.200", "198.51.100.201", "198.51.100.202", "198.51.100.203", "2001:db8:100::200")
	kept, gone := held(owned, onLink, "lo:pier")
	if diff := cmp.Diff(addrs("198.51.100.200", "2001:db8:100::200"), kept, addrCmp); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(addrs("198.51.100.201", "198.51.100.202", "198.51.100.203"), gone, addrCmp); diff != "" {
		t.Errorf("gone (-want +got):\n%s", diff)
	}
}

func TestPlan(t *testing.T) {
	lo := map[netip.Addr]found{
		netip.MustParseAddr("127.0.0.1"):         {label: "lo"},
		netip.MustParseAddr("::1"):               {host: true},
		netip.MustParseAddr("198.51.100.200"):    {host: true, label: "lo:pier"},
		netip.MustParseAddr("198.51.100.250"):    {host: true, label: "lo"}, // an admin's
		netip.MustParseAddr("2001:db8:100::200"): {host: true},
	}
	tests := []struct {
		name   string
		want   []netip.Addr
		owned  []netip.Addr
		onLink map[netip.Addr]found
		out    change
	}{
		{name: "nothing"},
		{
			name: "add to empty link",
			want: addrs("198.51.100.200", "2001:db8:100::200"),
			out:  change{add: addrs("198.51.100.200", "2001:db8:100::200")},
		},
		{
			name:   "already held",
			want:   addrs("198.51.100.200", "2001:db8:100::200"),
			owned:  addrs("198.51.100.200", "2001:db8:100::200"),
			onLink: lo,
		},
		{
			name:   "one no longer wanted",
			want:   addrs("2001:db8:100::200"),
			owned:  addrs("198.51.100.200", "2001:db8:100::200"),
			onLink: lo,
			out:    change{remove: addrs("198.51.100.200")},
		},
		{
			name:   "none wanted leaves foreign ones",
			owned:  addrs("198.51.100.200", "2001:db8:100::200"),
			onLink: lo,
			out:    change{remove: addrs("198.51.100.200", "2001:db8:100::200")},
		},
		{
			name:   "wanted but configured by someone else",
			want:   addrs("198.51.100.250", "198.51.100.201"),
			onLink: lo,
			out:    change{add: addrs("198.51.100.201"), foreign: addrs("198.51.100.250")},
		},
		{
			name:   "wanted, on link, not recorded",
			want:   addrs("198.51.100.200"),
			onLink: lo,
			out:    change{foreign: addrs("198.51.100.200")},
		},
		{
			name:   "move",
			want:   addrs("198.51.100.201"),
			owned:  addrs("198.51.100.200"),
			onLink: lo,
			out:    change{add: addrs("198.51.100.201"), remove: addrs("198.51.100.200")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := plan(tt.want, tt.owned, tt.onLink)
			if diff := cmp.Diff(tt.out, got, addrCmp, cmp.AllowUnexported(change{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	path := t.TempDir() + "/sub/vips.json"
	got, err := readState(path)
	if err != nil || got != nil {
		t.Fatalf("missing state: got %v, %v; want nothing", got, err)
	}
	want := addrs("198.51.100.200", "2001:db8:100::200")
	if err := writeState(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err = readState(path); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if err := writeState(path, nil); err != nil {
		t.Fatal(err)
	}
	if got, err = readState(path); err != nil || len(got) != 0 {
		t.Fatalf("emptied state: got %v, %v", got, err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, o := range []Options{
		{Link: "averylonglink"},
		{Link: "eth0:1"},
		{StateFile: "relative/vips.json"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v.link != "lo" || v.label != "lo:pier" {
		t.Errorf("defaults: link %q label %q", v.link, v.label)
	}
}
