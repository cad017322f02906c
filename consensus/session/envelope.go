package session

import (
	"encoding/binary"
	"fmt"
)

// Magic starts every session envelope this package writes: three marker
// bytes and the format version. A command that does not start with the
// marker is a plain command, which the table never sees. Read it, never
// assign it: the decoders compare with constants of the same value.
var Magic = [4]byte{0xd5, 'S', 'E', formatFixed}

// marker is Magic's three marker bytes as the high bytes of a big-endian
// word, and markerWord all of Magic: the hot paths compare a command's
// first four bytes with a constant instead of loading Magic.
// TestMagicWords holds them equal to Magic.
const (
	marker     = uint32(0xd5)<<24 | uint32('S')<<16 | uint32('E')<<8
	markerWord = marker | formatFixed
)

// The envelope formats. Both put the leader's time at the same offset.
const (
	// formatVarint (1) encodes a command's session, seq and acked as
	// uvarints. It is still read: logs written with it replay as before.
	formatVarint = 1
	// formatFixed (2) encodes them as 8-byte big-endian fields at fixed
	// offsets, which every replica decodes with three loads instead of
	// three varint loops; it costs a command at most 21 bytes more (24
	// bytes where format 1 took 3 to 30).
	formatFixed = 2
)

// Kind is the type of an envelope.
type Kind uint8

// The envelope kinds.
const (
	// KindRegister opens a session; its ID is the index of the log entry.
	KindRegister Kind = 1
	// KindCommand carries a client command stamped with (session, seq).
	KindCommand Kind = 2
	// KindClose ends a session and frees its cached results.
	KindClose Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindRegister:
		return "register"
	case KindCommand:
		return "command"
	case KindClose:
		return "close"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ID names a session: the log index of the entry that registered it.
// Index-based IDs are unique in the cluster without any randomness, every
// replica derives the same ID, and they need 8 bytes instead of a UUID's 16.
// A retried registration simply opens a second session; the first one
// expires unused.
type ID uint64

// Envelope layout: Magic (4 bytes), kind (1), leader time (8, big endian,
// at a fixed offset so the leader can stamp it in place), then for a
// command the session, seq and acked (8 bytes each, big endian) followed by
// the payload, and for a close the session (8 bytes). Format 1 had the
// same header and uvarints where format 2 has the 8-byte fields.
const (
	timeOffset = len(Magic) + 1
	headerLen  = timeOffset + 8
	commandLen = headerLen + 3*8 // a command envelope without its payload
)

// MaxCommandOverhead is the number of bytes AppendCommand adds to a
// payload. A limit on the size of commands a Client stamps must leave
// this much room.
const MaxCommandOverhead = commandLen

// Envelope is a decoded session command.
type Envelope struct {
	Kind Kind
	// Time is the leader's clock when it proposed the entry, in Unix
	// nanoseconds (0: not stamped, which leaves the table's time as is).
	Time int64
	// Session is the session of a command or close.
	Session ID
	// Seq is a command's sequence number in its session (from 1).
	Seq uint64
	// Acked is the lowest sequence number whose result the client still
	// waits for: results of lower ones can be discarded.
	Acked uint64
	// Payload is the client's command. It aliases the decoded bytes.
	Payload []byte
}

// IsEnvelope reports whether cmd starts with Magic's marker (any format
// version: Parse refuses the versions it does not know).
func IsEnvelope(cmd []byte) bool {
	return len(cmd) >= len(Magic) && binary.BigEndian.Uint32(cmd)&^0xff == marker
}

// AppendRegister appends a register envelope to dst.
func AppendRegister(dst []byte) []byte {
	return appendHeader(dst, KindRegister)
}

// AppendCommand appends a command envelope carrying payload to dst.
func AppendCommand(dst []byte, id ID, seq, acked uint64, payload []byte) []byte {
	dst = appendHeader(dst, KindCommand)
	dst = binary.BigEndian.AppendUint64(dst, uint64(id))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, acked)
	return append(dst, payload...)
}

// AppendClose appends a close envelope for session id to dst.
func AppendClose(dst []byte, id ID) []byte {
	return binary.BigEndian.AppendUint64(appendHeader(dst, KindClose), uint64(id))
}

func appendHeader(dst []byte, k Kind) []byte {
	dst = append(dst, Magic[:]...)
	dst = append(dst, byte(k))
	return binary.BigEndian.AppendUint64(dst, 0)
}

// Stamp writes the leader's time (Unix nanoseconds) into an envelope in
// place and reports whether cmd is one. The leader calls it on every
// command it proposes; it leaves plain commands alone.
func Stamp(cmd []byte, now int64) bool {
	if !IsEnvelope(cmd) || len(cmd) < headerLen {
		return false
	}
	binary.BigEndian.PutUint64(cmd[timeOffset:], uint64(now))
	return true
}

// Parse decodes an envelope. The Payload of the result aliases cmd.
func Parse(cmd []byte) (Envelope, error) {
	var e Envelope
	if err := ParseInto(&e, cmd); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// ParseInto is Parse decoding into *e, for callers on a hot path (every
// replica decodes every session command): it spares copying the result.
// On error *e is left in an unspecified state.
//
// A command envelope of the current format is decoded without a call or a
// loop; the other kinds and format 1 take parseSlow.
func ParseInto(e *Envelope, cmd []byte) error {
	if len(cmd) < commandLen {
		return parseSlow(e, cmd)
	}
	h := (*[commandLen]byte)(cmd) // the header, with bounds the compiler knows
	if binary.BigEndian.Uint32(h[:4]) != markerWord || Kind(h[len(Magic)]) != KindCommand {
		return parseSlow(e, cmd)
	}
	// Field by field: assigning a composite literal through e would build
	// it aside and copy it with a write barrier, which costs more than the
	// decoding.
	e.Kind = KindCommand
	e.Time = int64(binary.BigEndian.Uint64(h[timeOffset:]))
	e.Session = ID(binary.BigEndian.Uint64(h[headerLen:]))
	e.Seq = binary.BigEndian.Uint64(h[headerLen+8:])
	e.Acked = binary.BigEndian.Uint64(h[headerLen+16:])
	e.Payload = cmd[commandLen:]
	if e.Seq == 0 || e.Session == 0 {
		return e.check(0)
	}
	return nil
}

// parseSlow is ParseInto for every envelope but a command of the current
// format, and for what is not an envelope.
func parseSlow(e *Envelope, cmd []byte) error {
	if len(cmd) < headerLen || !IsEnvelope(cmd) {
		if !IsEnvelope(cmd) {
			return fmt.Errorf("%w: not a session envelope", ErrMalformed)
		}
		return fmt.Errorf("%w: envelope of %d bytes; header needs %d", ErrMalformed, len(cmd), headerLen)
	}
	format := cmd[len(Magic)-1]
	if format != formatFixed && format != formatVarint {
		return fmt.Errorf("%w: envelope format %d; this version reads %d and %d", ErrMalformed, format, formatVarint, formatFixed)
	}
	*e = Envelope{Kind: Kind(cmd[len(Magic)]), Time: int64(binary.BigEndian.Uint64(cmd[timeOffset:]))}
	field := uvarint
	if format == formatFixed {
		field = fixed
	}
	rest := cmd[headerLen:]
	ok := true
	switch e.Kind {
	case KindCommand:
		var id uint64
		id, rest, ok = field(rest)
		e.Session = ID(id)
		if ok {
			e.Seq, rest, ok = field(rest)
		}
		if ok {
			e.Acked, rest, ok = field(rest)
		}
		e.Payload = rest
	case KindClose:
		var id uint64
		id, rest, ok = field(rest)
		e.Session = ID(id)
	case KindRegister:
	default:
		return fmt.Errorf("%w: unknown envelope kind %d", ErrMalformed, cmd[len(Magic)])
	}
	if !ok {
		return fmt.Errorf("%w: truncated %v envelope", ErrMalformed, e.Kind)
	}
	return e.check(len(rest))
}

// check reports what is wrong with a decoded envelope, trailing the number
// of bytes left after a register's or a close's fields.
func (e *Envelope) check(trailing int) error {
	switch {
	case e.Kind == KindCommand && e.Seq == 0:
		return fmt.Errorf("%w: command with sequence number 0", ErrMalformed)
	case e.Kind != KindCommand && trailing != 0:
		return fmt.Errorf("%w: %d trailing bytes after a %v envelope", ErrMalformed, trailing, e.Kind)
	case e.Kind != KindRegister && e.Session == 0:
		return fmt.Errorf("%w: %v envelope for session 0", ErrMalformed, e.Kind)
	}
	return nil
}

// fixed decodes an 8-byte big-endian field from the front of b and returns
// the rest; ok is false if b is shorter.
func fixed(b []byte) (v uint64, rest []byte, ok bool) {
	if len(b) < 8 {
		return 0, b, false
	}
	return binary.BigEndian.Uint64(b), b[8:], true
}

// uvarint decodes a uvarint from the front of b and returns the rest; ok
// is false if b holds none. Values of up to three bytes (below 2^21:
// session IDs and sequence numbers of all but very old sessions) skip the
// general decoder's loop.
func uvarint(b []byte) (v uint64, rest []byte, ok bool) {
	if len(b) >= 3 {
		b0, b1, b2 := uint64(b[0]), uint64(b[1]), uint64(b[2])
		switch {
		case b0 < 0x80:
			return b0, b[1:], true
		case b1 < 0x80:
			return b0&0x7f | b1<<7, b[2:], true
		case b2 < 0x80:
			return b0&0x7f | (b1&0x7f)<<7 | b2<<14, b[3:], true
		}
	}
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}
