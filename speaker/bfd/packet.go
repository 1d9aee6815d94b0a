package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// State is a session state (RFC 5880 §4.1, Sta field).
type State uint8

// Session states, with their wire values.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag is a diagnostic code: why the sender's session last left Up (RFC
// 5880 §4.1).
type Diag uint8

// Diagnostic codes.
const (
	DiagNone                        Diag = 0
	DiagControlDetectionTimeExpired Diag = 1
	DiagEchoFailed                  Diag = 2
	DiagNeighborDown                Diag = 3
	DiagForwardingPlaneReset        Diag = 4
	DiagPathDown                    Diag = 5
	DiagConcatenatedPathDown        Diag = 6
	DiagAdminDown                   Diag = 7
	DiagReverseConcatenatedPathDown Diag = 8
)

var diagNames = [...]string{
	"none", "control detection time expired", "echo function failed",
	"neighbor signaled session down", "forwarding plane reset", "path down",
	"concatenated path down", "administratively down",
	"reverse concatenated path down",
}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("diag %d", uint8(d))
}

// Version is the only protocol version this package speaks.
const Version = 1

// Packet lengths: a control packet without and with an authentication
// section's first two bytes.
const (
	headerLen     = 24
	minAuthLength = 26
)

// Flag bits in the second byte.
const (
	flagPoll       = 1 << 5
	flagFinal      = 1 << 4
	flagCPI        = 1 << 3
	flagAuth       = 1 << 2
	flagDemand     = 1 << 1
	flagMultipoint = 1 << 0
)

// Errors Parse returns. ErrAuthentication is separate from ErrMalformed:
// the packet may be well formed, but this implementation speaks no
// authentication, so it drops it (and counts it apart).
var (
	ErrMalformed      = errors.New("malformed bfd control packet")
	ErrAuthentication = errors.New("bfd authentication not supported")
)

// Packet is a BFD control packet (RFC 5880 §4.1). Intervals travel as
// microseconds; Marshal rounds durations down to whole microseconds.
type Packet struct {
	Diag  Diag
	State State
	// Flags.
	Poll, Final, ControlPlaneIndependent, Demand bool
	// Authentication and Multipoint are never set on a packet Parse
	// accepts; they exist so tests can build packets Parse must refuse.
	Authentication, Multipoint bool

	DetectMult        uint8
	MyDiscriminator   uint32
	YourDiscriminator uint32
	DesiredMinTx      time.Duration
	RequiredMinRx     time.Duration
	RequiredMinEchoRx time.Duration
}

// maxInterval is the largest interval the 32-bit microsecond fields hold.
const maxInterval = time.Duration(math.MaxUint32) * time.Microsecond

// Marshal encodes p without an authentication section.
func (p *Packet) Marshal() ([]byte, error) {
	return p.AppendTo(make([]byte, 0, headerLen))
}

// AppendTo appends p's encoding to b.
func (p *Packet) AppendTo(b []byte) ([]byte, error) {
	if p.State > Up {
		return b, fmt.Errorf("marshal: state %d: %w", p.State, ErrMalformed)
	}
	if p.Diag > 31 {
		return b, fmt.Errorf("marshal: diag %d: %w", p.Diag, ErrMalformed)
	}
	for _, d := range []time.Duration{p.DesiredMinTx, p.RequiredMinRx, p.RequiredMinEchoRx} {
		if d < 0 || d > maxInterval {
			return b, fmt.Errorf("marshal: interval %s out of range: %w", d, ErrMalformed)
		}
	}
	var flags byte
	for _, f := range []struct {
		set bool
		bit byte
	}{{p.Poll, flagPoll}, {p.Final, flagFinal}, {p.ControlPlaneIndependent, flagCPI}, {p.Authentication, flagAuth}, {p.Demand, flagDemand}, {p.Multipoint, flagMultipoint}} {
		if f.set {
			flags |= f.bit
		}
	}
	b = append(b, Version<<5|byte(p.Diag), byte(p.State)<<6|flags, p.DetectMult, headerLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	b = binary.BigEndian.AppendUint32(b, uint32(p.DesiredMinTx/time.Microsecond))
	b = binary.BigEndian.AppendUint32(b, uint32(p.RequiredMinRx/time.Microsecond))
	b = binary.BigEndian.AppendUint32(b, uint32(p.RequiredMinEchoRx/time.Microsecond))
	return b, nil
}

// Parse decodes and validates a control packet received as the whole UDP
// payload b, applying the checks of RFC 5880 §6.8.6 that need no session:
// version 1, a length no shorter than the minimum and no longer than b, a
// non-zero detect multiplier, Multipoint clear, a non-zero My
// Discriminator, and a zero Your Discriminator only in the Down and
// AdminDown states. Bytes past the Length field are ignored. A packet with
// the Authentication bit set fails with ErrAuthentication; every other
// failure wraps ErrMalformed.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < headerLen {
		return p, fmt.Errorf("%d bytes, want at least %d: %w", len(b), headerLen, ErrMalformed)
	}
	if v := b[0] >> 5; v != Version {
		return p, fmt.Errorf("version %d: %w", v, ErrMalformed)
	}
	p.Diag = Diag(b[0] & 0x1f)
	p.State = State(b[1] >> 6)
	flags := b[1]
	p.Poll = flags&flagPoll != 0
	p.Final = flags&flagFinal != 0
	p.ControlPlaneIndependent = flags&flagCPI != 0
	p.Authentication = flags&flagAuth != 0
	p.Demand = flags&flagDemand != 0
	p.Multipoint = flags&flagMultipoint != 0
	p.DetectMult = b[2]
	length := int(b[3])
	minLen := headerLen
	if p.Authentication {
		minLen = minAuthLength
	}
	if length < minLen {
		return p, fmt.Errorf("length field %d, want at least %d: %w", length, minLen, ErrMalformed)
	}
	if length > len(b) {
		return p, fmt.Errorf("length field %d beyond the %d bytes received: %w", length, len(b), ErrMalformed)
	}
	if p.DetectMult == 0 {
		return p, fmt.Errorf("detect multiplier 0: %w", ErrMalformed)
	}
	if p.Multipoint {
		return p, fmt.Errorf("multipoint bit set: %w", ErrMalformed)
	}
	p.MyDiscriminator = binary.BigEndian.Uint32(b[4:])
	p.YourDiscriminator = binary.BigEndian.Uint32(b[8:])
	p.DesiredMinTx = time.Duration(binary.BigEndian.Uint32(b[12:])) * time.Microsecond
	p.RequiredMinRx = time.Duration(binary.BigEndian.Uint32(b[16:])) * time.Microsecond
	p.RequiredMinEchoRx = time.Duration(binary.BigEndian.Uint32(b[20:])) * time.Microsecond
	if p.MyDiscriminator == 0 {
		return p, fmt.Errorf("my discriminator 0: %w", ErrMalformed)
	}
	if p.YourDiscriminator == 0 && p.State != Down && p.State != AdminDown {
		return p, fmt.Errorf("your discriminator 0 in state %s: %w", p.State, ErrMalformed)
	}
	if p.Authentication {
		return p, ErrAuthentication
	}
	return p, nil
}
