package relay

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/pires/go-proxyproto"
)

// FuzzTokenExtract checks routing-token extraction on any payload and
// token position: no panic, the payload is not modified, the name is at
// most Length bytes taken from the token's place, without trailing NUL or
// space, and a payload too short to hold the token yields nothing.
func FuzzTokenExtract(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x01srv1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00rest"), 4, 16)
	f.Add([]byte("srv2            "), 0, 16)
	f.Add([]byte("abc"), 4, 16)
	f.Add([]byte{}, 0, 0)
	f.Add([]byte("x"), -1, 70)
	f.Fuzz(func(t *testing.T, p []byte, offset, length int) {
		opts := TokenOptions{Offset: offset, Length: length}
		if opts.validate() != nil {
			return // refused by New; not reachable
		}
		in := slices.Clone(p)
		name, ok := opts.extract(p)
		if !bytes.Equal(in, p) {
			t.Fatal("extract changed the payload")
		}
		if ok != (len(p) >= offset+length) {
			t.Fatalf("ok = %v for %d bytes, token at %d+%d", ok, len(p), offset, length)
		}
		if !ok {
			if name != nil {
				t.Fatalf("name %q from a short payload", name)
			}
			return
		}
		if len(name) > length || !bytes.HasPrefix(p[offset:], name) {
			t.Fatalf("name %q is not a prefix of the token %q", name, p[offset:offset+length])
		}
		if n := len(name); n > 0 && (name[n-1] == 0 || name[n-1] == ' ') {
			t.Fatalf("name %q ends in padding", name)
		}
		if rest := p[offset+len(name) : offset+length]; len(bytes.Trim(rest, "\x00 ")) != 0 {
			t.Fatalf("name %q drops %q", name, rest)
		}
	})
}

// FuzzParseToken: ParseToken never panics and returns only valid options,
// which print back to what it parses.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"4:16", "0:63", "0:64", "-1:4", "4", "", "a:b", "4:16:1", "99999999999999999999:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts, err := ParseToken(s)
		if err != nil {
			return
		}
		if err := opts.validate(); err != nil {
			t.Fatalf("ParseToken(%q) = %+v, which validate refuses: %v", s, opts, err)
		}
		if _, ok := opts.extract(make([]byte, MaxTokenOffset+MaxTokenLength)); !ok {
			t.Fatalf("ParseToken(%q) = %+v: a token past the longest first read", s, opts)
		}
	})
}

// FuzzProxyHeader builds PROXY v2 headers for any client and destination
// and reads them back with the go-proxyproto parser a backend would use:
// the header parses, names the client and destination (IPv4-mapped
// addresses unmapped), the transport, and nothing follows it.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte{198, 51, 100, 7}, uint16(40000), []byte{203, 0, 113, 10}, uint16(8443), true)
	f.Add(netip.MustParseAddr("2001:db8::7").AsSlice(), uint16(1), netip.MustParseAddr("2001:db8::10").AsSlice(), uint16(16384), false)
	f.Add(netip.MustParseAddr("::ffff:198.51.100.7").AsSlice(), uint16(0), netip.MustParseAddr("::ffff:203.0.113.10").AsSlice(), uint16(65535), true)
	f.Fuzz(func(t *testing.T, clientIP []byte, clientPort uint16, dstIP []byte, dstPort uint16, tcp bool) {
		ca, ok1 := netip.AddrFromSlice(clientIP)
		da, ok2 := netip.AddrFromSlice(dstIP)
		if !ok1 || !ok2 || ca.Unmap().Is4() != da.Unmap().Is4() {
			return // both of one family: the client reached dst
		}
		proto := UDP
		if tcp {
			proto = TCP
		}
		client, dst := netip.AddrPortFrom(ca, clientPort), netip.AddrPortFrom(da, dstPort)
		b, err := proxyHeader(proto, client, dst)
		if err != nil {
			t.Fatalf("proxyHeader(%v, %v, %v): %v", proto, client, dst, err)
		}
		r := bufio.NewReader(bytes.NewReader(b))
		h, err := proxyproto.Read(r)
		if err != nil {
			t.Fatalf("header % x does not parse: %v", b, err)
		}
		if r.Buffered() != 0 {
			t.Fatalf("%d bytes after the header", r.Buffered())
		}
		if h.Version != 2 || h.Command != proxyproto.PROXY {
			t.Fatalf("version %d command %v", h.Version, h.Command)
		}
		src, dest := addrPortOf(t, h.SourceAddr), addrPortOf(t, h.DestinationAddr)
		wantSrc, wantDst := netip.AddrPortFrom(ca.Unmap(), clientPort), netip.AddrPortFrom(da.Unmap(), dstPort)
		if src != wantSrc || dest != wantDst {
			t.Fatalf("header says %v -> %v, want %v -> %v", src, dest, wantSrc, wantDst)
		}
		if h.TransportProtocol.IsStream() != tcp || h.TransportProtocol.IsDatagram() == tcp {
			t.Fatalf("transport %v for %v", h.TransportProtocol, proto)
		}
	})
}

func addrPortOf(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	t.Fatalf("address %T %v", a, a)
	return netip.AddrPort{}
}
