package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pier-lb/pier/speaker/bfd"
)

// TestHoldFor: only a change from Up to Down that the peer did not ask
// for (RFC 5882 §3.2) closes the BGP session; Up opens it again.
func TestHoldFor(t *testing.T) {
	for _, tc := range []struct {
		name          string
		c             bfd.Change
		hold, release bool
	}{
		{"up to down, detection time", bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.Up}, true, false},
		{"up to down, neighbor signaled down", bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.Down}, true, false},
		{"up to down, peer admin down", bfd.Change{From: bfd.Up, To: bfd.Down, RemoteState: bfd.AdminDown}, false, false},
		{"up to our admin down", bfd.Change{From: bfd.Up, To: bfd.AdminDown, RemoteState: bfd.Up}, false, false},
		{"init to down: never up", bfd.Change{From: bfd.Init, To: bfd.Down, RemoteState: bfd.Down}, false, false},
		{"down to init", bfd.Change{From: bfd.Down, To: bfd.Init}, false, false},
		{"init to up", bfd.Change{From: bfd.Init, To: bfd.Up}, false, true},
		{"down to up", bfd.Change{From: bfd.Down, To: bfd.Up}, false, true},
	} {
		hold, release := holdFor(tc.c)
		if hold != tc.hold || release != tc.release {
			t.Errorf("%s: hold %v release %v, want %v %v", tc.name, hold, release, tc.hold, tc.release)
		}
	}
}

// TestBFDPeerSettings: defaults; BFD changes never reset the BGP session;
// interval changes keep the BFD session, other changes restart it.
func TestBFDPeerSettings(t *testing.T) {
	base := Peer{Name: "r1", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64513, PeerASN: 64512, BFD: &BFD{}}
	got, err := normalizePeers([]Peer{base, {Name: "r2", Address: netip.MustParseAddr("198.51.100.2"), MyASN: 1, PeerASN: 2,
		BFD: &BFD{Multihop: true}}})
	if err != nil {
		t.Fatal(err)
	}
	want := BFD{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
	if diff := cmp.Diff(&want, got["r1"].BFD); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if base.BFD.DetectMult != 0 {
		t.Error("normalize changed the caller's BFD")
	}
	if mt := got["r2"].BFD.MinTTL; mt != 254 {
		t.Errorf("multihop min ttl %d, want 254", mt)
	}
	p := got["r1"]
	for _, tc := range []struct {
		name    string
		mod     func(b *BFD)
		sameBFD bool
	}{
		{"intervals", func(b *BFD) { b.DesiredMinTx, b.RequiredMinRx = time.Second, 50 * time.Millisecond }, true},
		{"detect multiplier", func(b *BFD) { b.DetectMult = 5 }, false},
		{"passive", func(b *BFD) { b.Passive = true }, false},
		{"multihop", func(b *BFD) { b.Multihop, b.MinTTL = true, 254 }, false},
	} {
		q := *p
		b := *p.BFD
		tc.mod(&b)
		q.BFD = &b
		if !samePeer(p, &q) {
			t.Errorf("%s: resets the BGP session", tc.name)
		}
		if got := sameBFDSession(p, &q); got != tc.sameBFD {
			t.Errorf("%s: same BFD session %v, want %v", tc.name, got, tc.sameBFD)
		}
	}
	off := *p
	off.BFD = nil
	if !samePeer(p, &off) || sameBFDSession(p, &off) {
		t.Error("BFD off: must keep the BGP session and stop the BFD one")
	}
}
