package relay

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in    string
		sock6 bool
		want  string
	}{
		{"192.0.2.7:5060", false, "192.0.2.7:5060"},
		{"[::ffff:192.0.2.7]:5060", false, "192.0.2.7:5060"},
		{"[::ffff:192.0.2.7]:5060", true, "[::ffff:192.0.2.7]:5060"},
		{"[2001:db8::1]:65535", true, "[2001:db8::1]:65535"},
		{"[fe80::1%3]:1", true, "[fe80::1%3]:1"},
	} {
		var sa unix.RawSockaddrInet6
		b := sockaddr(netip.MustParseAddrPort(tc.in), tc.sock6)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unsafe.Sizeof(sa)), b)
		if diff := cmp.Diff(tc.want, sockaddrAddrPort(&sa).String()); diff != "" {
			t.Errorf("%s (sock6 %v): -want +got\n%s", tc.in, tc.sock6, diff)
		}
	}
}
