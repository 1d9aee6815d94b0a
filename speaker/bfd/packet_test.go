package bfd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// upPacket is a packet in state Up with a poll; its encoding is upBytes.
var upPacket = Packet{
	Diag: DiagNone, State: Up, Poll: true, DetectMult: 3,
	MyDiscriminator: 0x01020304, YourDiscriminator: 0xa0b0c0d0,
	DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond,
	RequiredMinEchoRx: 50 * time.Millisecond,
}

// The bytes written out by hand from RFC 5880 §4.1's layout.
var upBytes = mustHex("20" + "e0" + "03" + "18" + // vers 1 diag 0, Up|P, mult 3, len 24
	"01020304" + "a0b0c0d0" + // discriminators
	"000493e0" + "000493e0" + "0000c350") // 300000 µs, 300000 µs, 50000 µs

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// with returns a copy of upBytes changed by f.
func with(f func(b []byte) []byte) []byte {
	return f(bytes.Clone(upBytes))
}

func TestMarshal(t *testing.T) {
	got, err := upPacket.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(upBytes, got); diff != "" {
		t.Errorf("Marshal (-want +got):\n%s", diff)
	}
	for _, bad := range []Packet{
		{State: 4, DetectMult: 1, MyDiscriminator: 1},
		{Diag: 32, DetectMult: 1, MyDiscriminator: 1},
		{DesiredMinTx: -1, DetectMult: 1, MyDiscriminator: 1},
		{RequiredMinRx: maxInterval + time.Microsecond, DetectMult: 1, MyDiscriminator: 1},
	} {
		if _, err := bad.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Marshal(%+v) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParse(t *testing.T) {
	down := Packet{Diag: DiagControlDetectionTimeExpired, State: Down, DetectMult: 5,
		MyDiscriminator: 7, DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	downBytes, err := down.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want Packet
		err  error
	}{
		{name: "up with poll", in: upBytes, want: upPacket},
		{name: "down without your discriminator", in: downBytes, want: down},
		{name: "admin down without your discriminator", in: with(func(b []byte) []byte {
			b[1] = 0 // AdminDown, no flags
			copy(b[8:12], []byte{0, 0, 0, 0})
			return b
		}), want: func() Packet { p := upPacket; p.State, p.Poll, p.YourDiscriminator = AdminDown, false, 0; return p }()},
		{name: "bytes past length ignored", in: append(bytes.Clone(upBytes), 1, 2, 3, 4), want: upPacket},
		{name: "final and demand", in: with(func(b []byte) []byte { b[1] = 3<<6 | flagFinal | flagDemand; return b }),
			want: func() Packet { p := upPacket; p.Poll, p.Final, p.Demand = false, true, true; return p }()},

		{name: "short", in: upBytes[:23], err: ErrMalformed},
		{name: "empty", in: nil, err: ErrMalformed},
		{name: "version 0", in: with(func(b []byte) []byte { b[0] = 0; return b }), err: ErrMalformed},
		{name: "version 2", in: with(func(b []byte) []byte { b[0] = 2 << 5; return b }), err: ErrMalformed},
		{name: "length field below 24", in: with(func(b []byte) []byte { b[3] = 23; return b }), err: ErrMalformed},
		{name: "length field beyond payload", in: with(func(b []byte) []byte { b[3] = 25; return b }), err: ErrMalformed},
		{name: "detect mult 0", in: with(func(b []byte) []byte { b[2] = 0; return b }), err: ErrMalformed},
		{name: "multipoint", in: with(func(b []byte) []byte { b[1] |= flagMultipoint; return b }), err: ErrMalformed},
		{name: "my discriminator 0", in: with(func(b []byte) []byte { copy(b[4:8], make([]byte, 4)); return b }), err: ErrMalformed},
		{name: "your discriminator 0 while up", in: with(func(b []byte) []byte { copy(b[8:12], make([]byte, 4)); return b }), err: ErrMalformed},
		{name: "your discriminator 0 while init", in: with(func(b []byte) []byte {
			b[1] = 2 << 6
			copy(b[8:12], make([]byte, 4))
			return b
		}), err: ErrMalformed},
		{name: "auth bit with short length", in: with(func(b []byte) []byte { b[1] |= flagAuth; return b }), err: ErrMalformed},
		{name: "auth bit", in: with(func(b []byte) []byte {
			b[1] |= flagAuth
			b[3] = 28
			return append(b, 1, 4, 1, 'x') // simple password, key 1, "x"
		}), err: ErrAuthentication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Parse = %+v, %v; want error %v", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	got := []string{Up.String(), AdminDown.String(), State(9).String(), DiagNeighborDown.String(), Diag(30).String()}
	want := []string{"Up", "AdminDown", "State(9)", "neighbor signaled session down", "diag 30"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzParsePacket: Parse never panics, and a packet it accepts marshals back
// to the bytes it came from (up to the Length field).
func FuzzParsePacket(f *testing.F) {
	f.Add(upBytes)
	down, _ := (&Packet{State: Down, DetectMult: 3, MyDiscriminator: 1, DesiredMinTx: time.Second}).Marshal()
	f.Add(down)
	f.Add(with(func(b []byte) []byte { b[1] |= flagAuth; b[3] = 26; return append(b, 1, 2) }))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuthentication) {
				t.Fatalf("Parse error %v wraps neither sentinel", err)
			}
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed packet: %v", err)
		}
		// Marshal always writes Length 24; Parse accepted b[3] >= 24 and
		// ignores the rest.
		want := bytes.Clone(b[:headerLen])
		want[3] = headerLen
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("re-parse (-first +second):\n%s", diff)
		}
	})
}
