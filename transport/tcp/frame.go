package tcp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// After the handshake, a connection carries frames in one direction:
//
//	uint32  body length N (big endian), 1 <= N <= Config.MaxFrameSize
//	byte    service name length S, S <= N-1
//	S bytes service name
//	N-1-S   payload
//
// The sender's node ID is not repeated: the handshake fixed it.

const frameHeaderLen = 5 // length + service-name length

// maxFrameLimit is the largest MaxFrameSize a Config may set.
const maxFrameLimit = 1 << 30

// maxServiceLen bounds service names: the frame encodes their length in a byte.
const maxServiceLen = 255

var (
	errMalformedFrame = errors.New("tcp: malformed frame")
	errFrameTooLarge  = errors.New("tcp: frame larger than MaxFrameSize")
)

// frameBodyLen is the body length of a frame carrying service and payload.
func frameBodyLen(service string, payload []byte) int {
	return 1 + len(service) + len(payload)
}

// writeFrame writes one frame to w. Errors are sticky in a bufio.Writer
// and surface at the next Flush.
func writeFrame(w *bufio.Writer, service string, payload []byte) {
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(frameBodyLen(service, payload)))
	hdr[4] = byte(len(service))
	_, _ = w.Write(hdr[:])
	_, _ = w.WriteString(service)
	_, _ = w.Write(payload)
}

// frameReader decodes the frames of one connection.
type frameReader struct {
	r   *bufio.Reader
	max int
	// service is the previous frame's service name: consecutive frames
	// usually share it, so reusing the string saves an allocation each.
	service string
}

// bodyChunk is the largest allocation made for a frame body before its
// bytes arrive. Larger bodies grow as data comes in, so a peer that claims
// a huge frame and then stalls cannot make us allocate the claimed size.
const bodyChunk = 64 << 10

// next reads one frame. It returns io.EOF at a clean end of stream,
// errFrameTooLarge or errMalformedFrame (wrapped) for a bad frame, or the
// connection's error. The payload is freshly allocated and owned by the caller.
func (fr *frameReader) next() (service string, payload []byte, err error) {
	// Peek and Discard read the small header parts straight out of the
	// bufio buffer, with no copy and no allocation.
	hdr, err := fr.r.Peek(4)
	if err != nil {
		if len(hdr) > 0 {
			return "", nil, noEOF(err)
		}
		return "", nil, err // io.EOF here is a clean close
	}
	n := binary.BigEndian.Uint32(hdr)
	_, _ = fr.r.Discard(4)
	if n == 0 {
		return "", nil, fmt.Errorf("%w: empty body", errMalformedFrame)
	}
	if uint64(n) > uint64(fr.max) {
		return "", nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, fr.max)
	}
	slen, err := fr.r.ReadByte()
	if err != nil {
		return "", nil, noEOF(err)
	}
	if uint32(slen) > n-1 {
		return "", nil, fmt.Errorf("%w: service name of %d bytes in a %d-byte body", errMalformedFrame, slen, n)
	}
	name, err := fr.r.Peek(int(slen)) // slen <= 255 fits any bufio buffer
	if err != nil {
		return "", nil, noEOF(err)
	}
	if string(name) != fr.service {
		fr.service = string(name)
	}
	_, _ = fr.r.Discard(int(slen))
	payload, err = readBody(fr.r, int(n-1-uint32(slen)))
	if err != nil {
		return "", nil, noEOF(err)
	}
	return fr.service, payload, nil
}

// readBody reads exactly n bytes, allocating no more than about twice what
// has actually arrived.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= bodyChunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b := make([]byte, 0, bodyChunk)
	for len(b) < n {
		want := min(n, max(2*len(b), bodyChunk))
		b = slices.Grow(b, want-len(b))
		m, err := io.ReadFull(r, b[len(b):want])
		b = b[:len(b)+m]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
