package session

import (
	"encoding/binary"
	"fmt"
)

// Magic starts every session envelope: three marker bytes and a format
// version. A command that does not start with Magic is a plain command,
// which the table never sees.
var Magic = [4]byte{0xd5, 'S', 'E', 1}

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
// command the uvarints session, seq and acked followed by the payload, and
// for a close the uvarint session.
const (
	timeOffset = len(Magic) + 1
	headerLen  = timeOffset + 8
)

// MaxCommandOverhead is the most bytes AppendCommand adds to a payload:
// the header and three uvarints of at most 10 bytes each. A limit on the
// size of commands a Client stamps must leave this much room.
const MaxCommandOverhead = headerLen + 3*binary.MaxVarintLen64

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

// IsEnvelope reports whether cmd starts with Magic.
func IsEnvelope(cmd []byte) bool {
	return len(cmd) >= len(Magic) && [4]byte(cmd[:4]) == Magic
}

// AppendRegister appends a register envelope to dst.
func AppendRegister(dst []byte) []byte {
	return appendHeader(dst, KindRegister)
}

// AppendCommand appends a command envelope carrying payload to dst.
func AppendCommand(dst []byte, id ID, seq, acked uint64, payload []byte) []byte {
	dst = appendHeader(dst, KindCommand)
	dst = binary.AppendUvarint(dst, uint64(id))
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, acked)
	return append(dst, payload...)
}

// AppendClose appends a close envelope for session id to dst.
func AppendClose(dst []byte, id ID) []byte {
	return binary.AppendUvarint(appendHeader(dst, KindClose), uint64(id))
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
//
// It runs for every session command on every replica, so the common case
// (a command envelope whose numbers fit a byte or two) takes no loop and
// no error formatting.
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
func ParseInto(e *Envelope, cmd []byte) error {
	if len(cmd) < headerLen || [4]byte(cmd[:4]) != Magic {
		if !IsEnvelope(cmd) {
			return fmt.Errorf("%w: not a session envelope", ErrMalformed)
		}
		return fmt.Errorf("%w: envelope of %d bytes; header needs %d", ErrMalformed, len(cmd), headerLen)
	}
	*e = Envelope{Kind: Kind(cmd[len(Magic)]), Time: int64(binary.BigEndian.Uint64(cmd[timeOffset:]))}
	rest := cmd[headerLen:]
	ok := true
	switch e.Kind {
	case KindCommand:
		var id uint64
		id, rest, ok = uvarint(rest)
		e.Session = ID(id)
		if ok {
			e.Seq, rest, ok = uvarint(rest)
		}
		if ok {
			e.Acked, rest, ok = uvarint(rest)
		}
		e.Payload = rest
	case KindClose:
		var id uint64
		id, rest, ok = uvarint(rest)
		e.Session = ID(id)
	case KindRegister:
	default:
		return fmt.Errorf("%w: unknown envelope kind %d", ErrMalformed, cmd[len(Magic)])
	}
	switch {
	case !ok:
		return fmt.Errorf("%w: truncated %v envelope", ErrMalformed, e.Kind)
	case e.Kind == KindCommand && e.Seq == 0:
		return fmt.Errorf("%w: command with sequence number 0", ErrMalformed)
	case e.Kind != KindCommand && len(rest) != 0:
		return fmt.Errorf("%w: %d trailing bytes after a %v envelope", ErrMalformed, len(rest), e.Kind)
	case e.Kind != KindRegister && e.Session == 0:
		return fmt.Errorf("%w: %v envelope for session 0", ErrMalformed, e.Kind)
	}
	return nil
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
