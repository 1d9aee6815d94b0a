package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the part of every datagram or request the generator reads
// back: magic, flow, sequence number and send time. The rest of the payload
// is padding.
const HeaderSize = 24

// magic marks the generator's payloads ("PLG" and version 1).
const magic uint32 = 0x504c4701

// ErrNotOurs is returned by Decode for bytes that do not carry a header.
var ErrNotOurs = errors.New("loadgen: not a generator payload")

// Header is what a payload carries.
type Header struct {
	Flow uint32 // the flow (source socket or connection) that sent it
	Seq  uint64 // per-flow sequence number, from 0
	Sent int64  // send time in nanoseconds since the run's start
}

// Encode writes h at the front of p, which must hold at least HeaderSize
// bytes; the rest of p is left as it is.
func Encode(p []byte, h Header) error {
	if len(p) < HeaderSize {
		return fmt.Errorf("loadgen: payload of %d bytes: want at least %d", len(p), HeaderSize)
	}
	binary.BigEndian.PutUint32(p[0:4], magic)
	binary.BigEndian.PutUint32(p[4:8], h.Flow)
	binary.BigEndian.PutUint64(p[8:16], h.Seq)
	binary.BigEndian.PutUint64(p[16:24], uint64(h.Sent))
	return nil
}

// Decode reads the header at the front of p.
func Decode(p []byte) (Header, error) {
	if len(p) < HeaderSize || binary.BigEndian.Uint32(p[0:4]) != magic {
		return Header{}, ErrNotOurs
	}
	return Header{
		Flow: binary.BigEndian.Uint32(p[4:8]),
		Seq:  binary.BigEndian.Uint64(p[8:16]),
		Sent: int64(binary.BigEndian.Uint64(p[16:24])),
	}, nil
}
