package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Frame layout (little endian), for files that need checksummed pieces but
// no record index: checkpoints, compacted logs, append-only side logs.
//
//	offset  size  field
//	0       4     CRC32C (Castagnoli) of bytes [4, 8+length)
//	4       4     length of the payload
//	8       n     payload
//
// As in a record, the checksum covers the length, so a torn or flipped
// length is caught, not trusted.
const FrameHeaderSize = 8

// MaxFrameSize is the largest payload a frame may carry. DecodeFrame rejects
// larger lengths as corrupt; writers must check sizes themselves (see
// AppendFrame).
const MaxFrameSize = MaxRecordSize

// FrameSize returns the number of bytes a frame with a payload of n bytes
// occupies.
func FrameSize(n int) int { return FrameHeaderSize + n }

// AppendFrame appends the frame carrying payload to dst and returns the
// extended slice. A payload over MaxFrameSize produces a frame DecodeFrame
// rejects, so callers that accept arbitrary sizes check them first.
func AppendFrame(dst, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, FrameHeaderSize)...)
	dst = append(dst, payload...)
	return SealFrame(dst, start)
}

// SealFrame completes a frame encoded in place: dst[start:start+
// FrameHeaderSize] is space reserved for the header and everything after it
// is the payload. It fills in the header and returns dst. It lets an encoder
// write its payload straight into the output buffer, without a copy:
//
//	start := len(buf)
//	buf = append(buf, make([]byte, wal.FrameHeaderSize)...)
//	buf = appendMyPayload(buf)
//	buf = wal.SealFrame(buf, start)
func SealFrame(dst []byte, start int) []byte {
	frame := dst[start:]
	binary.LittleEndian.PutUint32(frame[4:8], uint32(len(frame)-FrameHeaderSize))
	binary.LittleEndian.PutUint32(frame[0:4], crc32.Checksum(frame[4:], castagnoli))
	return dst
}

// DecodeFrame decodes the frame at the start of b. It returns the payload (a
// sub-slice of b, not a copy; nothing is allocated, whatever length the
// header claims) and the number of bytes the frame occupies.
//
// A frame cut short by the end of b returns an error wrapping ErrTruncated:
// at the end of a file, the torn tail of a write a crash interrupted. A
// frame whose length is over MaxFrameSize or whose checksum does not match
// returns one wrapping ErrCorrupt. Callers reading a file written by
// appends treat both at the tail the same way (cut it off: it was never
// acknowledged); the distinction is for reporting. DecodeFrame never
// panics.
func DecodeFrame(b []byte) (payload []byte, n int, err error) {
	if len(b) < FrameHeaderSize {
		return nil, 0, fmt.Errorf("%w: %d frame header bytes of %d", ErrTruncated, len(b), FrameHeaderSize)
	}
	length := binary.LittleEndian.Uint32(b[4:8])
	if length > MaxFrameSize {
		return nil, 0, fmt.Errorf("%w: frame length %d exceeds %d", ErrCorrupt, length, MaxFrameSize)
	}
	n = FrameHeaderSize + int(length)
	if len(b) < n {
		return nil, 0, fmt.Errorf("%w: %d frame bytes of %d", ErrTruncated, len(b), n)
	}
	want := binary.LittleEndian.Uint32(b[0:4])
	if got := crc32.Checksum(b[4:n], castagnoli); got != want {
		return nil, 0, fmt.Errorf("%w: frame checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	return b[FrameHeaderSize:n:n], n, nil
}
