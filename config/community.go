package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Community is one BGP community: a standard community (RFC 1997) when
// Large is false, its 32-bit value in Value (high 16 bits usually an ASN);
// a large community (RFC 8092) when Large is true, in GlobalAdmin,
// LocalData1 and LocalData2. Community is comparable.
type Community struct {
	Large                               bool
	Value                               uint32
	GlobalAdmin, LocalData1, LocalData2 uint32
}

// StandardCommunity returns the community "high:low".
func StandardCommunity(high, low uint16) Community {
	return Community{Value: uint32(high)<<16 | uint32(low)}
}

// LargeCommunity returns the community "large:global:local1:local2".
func LargeCommunity(global, local1, local2 uint32) Community {
	return Community{Large: true, GlobalAdmin: global, LocalData1: local1, LocalData2: local2}
}

// Well-known standard communities, by the names ParseCommunity accepts.
// "local-as" is an alias of "no-export-subconfed".
var wellKnown = map[string]uint32{
	"graceful-shutdown":   0xFFFF0000, // RFC 8326
	"accept-own":          0xFFFF0001, // RFC 7611
	"llgr-stale":          0xFFFF0006, // RFC 9494
	"no-llgr":             0xFFFF0007, // RFC 9494
	"blackhole":           0xFFFF029A, // RFC 7999
	"no-export":           0xFFFFFF01, // RFC 1997
	"no-advertise":        0xFFFFFF02, // RFC 1997
	"no-export-subconfed": 0xFFFFFF03, // RFC 1997
	"local-as":            0xFFFFFF03,
	"no-peer":             0xFFFFFF04, // RFC 3765
}

// ParseCommunity parses "65000:100" (each half 0 to 65535), a well-known
// name ("no-export", "no-advertise", "no-export-subconfed" or "local-as",
// "no-peer", "graceful-shutdown", "accept-own", "blackhole", "llgr-stale",
// "no-llgr"; any case) or "large:A:B:C" (each part 0 to 4294967295).
func ParseCommunity(s string) (Community, error) {
	if v, ok := wellKnown[strings.ToLower(s)]; ok {
		return Community{Value: v}, nil
	}
	parts := strings.Split(s, ":")
	switch {
	case len(parts) == 4 && strings.EqualFold(parts[0], "large"):
		return parseLarge(s, parts[1:])
	case len(parts) == 2:
		return parseStandard(s, parts)
	}
	return Community{}, fmt.Errorf(`%q is not a community: want "65000:100", "large:65000:1:2" or a well-known name such as "no-export"`, s)
}

func parseStandard(s string, parts []string) (Community, error) {
	var v [2]uint16
	for i, part := range parts {
		n, err := strconv.ParseUint(part, 10, 16)
		if err != nil {
			return Community{}, fmt.Errorf("community %q: %q is not a number from 0 to 65535", s, part)
		}
		v[i] = uint16(n)
	}
	return StandardCommunity(v[0], v[1]), nil
}

func parseLarge(s string, parts []string) (Community, error) {
	var v [3]uint32
	for i, part := range parts {
		n, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			return Community{}, fmt.Errorf("large community %q: %q is not a number from 0 to 4294967295", s, part)
		}
		v[i] = uint32(n)
	}
	return LargeCommunity(v[0], v[1], v[2]), nil
}

// String formats c the way ParseCommunity reads it; well-known values are
// written by name.
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2)
	}
	for _, name := range sortedKeys(wellKnown) {
		if wellKnown[name] == c.Value && name != "local-as" {
			return name
		}
	}
	return fmt.Sprintf("%d:%d", c.Value>>16, c.Value&0xFFFF)
}
