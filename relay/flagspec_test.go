package relay

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseListener(t *testing.T) {
	tests := []struct {
		in      string
		want    Listener
		wantErr bool
	}{
		{in: "calls-udp/udp/0.0.0.0:16384", want: Listener{Name: "calls-udp", Protocol: UDP, Addr: netip.MustParseAddrPort("0.0.0.0:16384")}},
		{in: "t/TCP/[2001:db8::1]:8443", want: Listener{Name: "t", Protocol: TCP, Addr: netip.MustParseAddrPort("[2001:db8::1]:8443")}},
		{in: "t/SCTP/0.0.0.0:1", wantErr: true},
		{in: "t/TCP/0.0.0.0", wantErr: true},
		{in: "TCP/0.0.0.0:1", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseListener(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseListener(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("ParseListener(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseBackend(t *testing.T) {
	tests := []struct {
		in      string
		want    Backend
		wantErr bool
	}{
		{in: "srv1=198.18.1.1", want: Backend{Name: "srv1", Addr: netip.MustParseAddr("198.18.1.1")}},
		{in: "srv2=198.18.1.2:9000", want: Backend{Name: "srv2", Addr: netip.MustParseAddr("198.18.1.2"), DefaultPort: 9000}},
		{in: "=198.18.1.2", wantErr: true},
		{in: "srv3", wantErr: true},
		{in: "srv3=host", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseBackend(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseBackend(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("ParseBackend(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
