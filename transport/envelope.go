package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The RPC envelope is a compact binary header in front of the opaque body:
//
//	byte     version (envelopeVersion)
//	byte     kind (request, response, error, cancel)
//	uvarint  call ID (the correlation ID chosen by the caller)
//	request: uvarint timeout in microseconds (0 = none), uvarint service
//	         length, service bytes, then the request body
//	response: the response body
//	error:   byte ErrorCode, then the error message (UTF-8)
//	cancel:  nothing
//
// Every length is checked against the bytes actually present before it is
// used, so a hostile envelope can never make the decoder allocate more than
// the envelope's own size.

const envelopeVersion = 1

// maxServiceLen bounds service names in envelopes; longer names are refused
// by Call and by the decoder.
const maxServiceLen = 255

type envelopeKind uint8

const (
	kindRequest  envelopeKind = 1
	kindResponse envelopeKind = 2
	kindError    envelopeKind = 3
	kindCancel   envelopeKind = 4
)

// envelope is one decoded RPC message. body aliases the decoded buffer.
type envelope struct {
	kind    envelopeKind
	id      uint64
	timeout time.Duration // request only; 0 means no deadline
	service string        // request only
	code    ErrorCode     // error only
	body    []byte        // request/response body, or error message
}

var errBadEnvelope = errors.New("transport: malformed rpc envelope")

// appendEnvelope appends the encoding of e to dst.
func appendEnvelope(dst []byte, e *envelope) []byte {
	dst = append(dst, envelopeVersion, byte(e.kind))
	dst = binary.AppendUvarint(dst, e.id)
	switch e.kind {
	case kindRequest:
		var micros uint64
		if e.timeout > 0 {
			// Round up so that a tiny positive budget never turns into
			// "no deadline" on the other side.
			micros = uint64((e.timeout + time.Microsecond - 1) / time.Microsecond)
		}
		dst = binary.AppendUvarint(dst, micros)
		dst = binary.AppendUvarint(dst, uint64(len(e.service)))
		dst = append(dst, e.service...)
	case kindError:
		dst = append(dst, byte(e.code))
	}
	return append(dst, e.body...)
}

// envelopeSize is an upper bound of the encoded size of e, used to allocate once.
func envelopeSize(e *envelope) int {
	return 2 + 3*binary.MaxVarintLen64 + len(e.service) + 1 + len(e.body)
}

// decodeEnvelope parses b. The returned body aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 2 {
		return e, fmt.Errorf("%w: %d bytes", errBadEnvelope, len(b))
	}
	if b[0] != envelopeVersion {
		return e, fmt.Errorf("%w: version %d, want %d", errBadEnvelope, b[0], envelopeVersion)
	}
	e.kind = envelopeKind(b[1])
	rest := b[2:]
	id, n := binary.Uvarint(rest)
	if n <= 0 {
		return e, fmt.Errorf("%w: bad call id", errBadEnvelope)
	}
	e.id = id
	rest = rest[n:]
	switch e.kind {
	case kindRequest:
		micros, n := binary.Uvarint(rest)
		if n <= 0 {
			return e, fmt.Errorf("%w: bad timeout", errBadEnvelope)
		}
		// A budget beyond ~290 years cannot be a real deadline; clamping
		// also keeps the conversion to time.Duration from overflowing.
		const maxMicros = uint64(1<<63-1) / uint64(time.Microsecond)
		if micros > maxMicros {
			micros = maxMicros
		}
		e.timeout = time.Duration(micros) * time.Microsecond
		rest = rest[n:]
		slen, n := binary.Uvarint(rest)
		if n <= 0 || slen > maxServiceLen || slen > uint64(len(rest)-n) {
			return e, fmt.Errorf("%w: bad service length", errBadEnvelope)
		}
		rest = rest[n:]
		e.service = string(rest[:slen])
		rest = rest[slen:]
	case kindResponse, kindCancel:
	case kindError:
		if len(rest) < 1 {
			return e, fmt.Errorf("%w: missing error code", errBadEnvelope)
		}
		e.code = ErrorCode(rest[0])
		rest = rest[1:]
	default:
		return e, fmt.Errorf("%w: unknown kind %d", errBadEnvelope, e.kind)
	}
	if e.kind == kindCancel && len(rest) != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes after cancel", errBadEnvelope, len(rest))
	}
	e.body = rest
	return e, nil
}
