package loadgen

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{Flow: 63, Seq: 1 << 40, Sent: 123456789},
		{Flow: ^uint32(0), Seq: ^uint64(0), Sent: -1},
	} {
		p := make([]byte, 64)
		for i := range p {
			p[i] = 0xee
		}
		if err := Encode(p, h); err != nil {
			t.Fatal(err)
		}
		got, err := Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		if p[HeaderSize] != 0xee {
			t.Errorf("Encode wrote past the header")
		}
	}
}

func TestPayloadRejects(t *testing.T) {
	if err := Encode(make([]byte, HeaderSize-1), Header{}); err == nil {
		t.Error("Encode into 23 bytes: no error")
	}
	good := make([]byte, HeaderSize)
	_ = Encode(good, Header{Flow: 1})
	for name, p := range map[string][]byte{
		"short":     good[:HeaderSize-1],
		"empty":     nil,
		"bad magic": append([]byte{0, 0, 0, 0}, good[4:]...),
	} {
		if _, err := Decode(p); !errors.Is(err, ErrNotOurs) {
			t.Errorf("%s: err = %v, want ErrNotOurs", name, err)
		}
	}
}
