package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Community
		str     string
		wantErr bool
	}{
		{in: "65000:100", want: StandardCommunity(65000, 100), str: "65000:100"},
		{in: "0:0", want: Community{}, str: "0:0"},
		{in: "65535:65535", want: Community{Value: 0xFFFFFFFF}, str: "65535:65535"},
		{in: "no-export", want: Community{Value: 0xFFFFFF01}, str: "no-export"},
		{in: "NO-ADVERTISE", want: Community{Value: 0xFFFFFF02}, str: "no-advertise"},
		{in: "local-as", want: Community{Value: 0xFFFFFF03}, str: "no-export-subconfed"},
		{in: "no-peer", want: Community{Value: 0xFFFFFF04}, str: "no-peer"},
		{in: "blackhole", want: StandardCommunity(65535, 666), str: "blackhole"},
		{in: "65535:0", want: Community{Value: 0xFFFF0000}, str: "graceful-shutdown"},
		{in: "large:1:2:3", want: LargeCommunity(1, 2, 3), str: "large:1:2:3"},
		{in: "large:4294967295:0:4294967295", want: LargeCommunity(4294967295, 0, 4294967295), str: "large:4294967295:0:4294967295"},
		{in: "65536:1", wantErr: true},
		{in: "1:-1", wantErr: true},
		{in: "+1:1", wantErr: true},
		{in: "1:2:3", wantErr: true},
		{in: "large:1:2:3:4", wantErr: true},
		{in: "large:1:2:x", wantErr: true},
		{in: "", wantErr: true},
		{in: " 1:2", wantErr: true},
	} {
		got, err := ParseCommunity(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseCommunity(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseCommunity(%q) (-want +got):\n%s", tc.in, diff)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseCommunity(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
		if back, err := ParseCommunity(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %v, %v", tc.in, back, err)
		}
	}
}
