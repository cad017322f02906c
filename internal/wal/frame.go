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
//	4       4     length of the payload; the top bit is the continuation flag
//	8       n     payload
//
// The continuation flag marks a frame that is not the first of its write
// batch (see SealContinuationFrame): as for records, a valid batch-starting
// frame after a damaged one proves the damage is not a torn tail (see
// FindBatchStartFrame).
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
	return sealFrame(dst, start, false)
}

// SealContinuationFrame is SealFrame for a frame that is not the first of
// its write batch: one written with the frames before it by one write and
// covered by the same fsync. A writer that appends in batches marks every
// frame but the first of each batch this way, so that a reader can tell a
// torn tail from corruption (FindBatchStartFrame). DecodeFrame reads both
// kinds alike.
func SealContinuationFrame(dst []byte, start int) []byte {
	return sealFrame(dst, start, true)
}

func sealFrame(dst []byte, start int, cont bool) []byte {
	frame := dst[start:]
	length := uint32(len(frame) - FrameHeaderSize)
	if cont {
		length |= contFlag
	}
	binary.LittleEndian.PutUint32(frame[4:8], length)
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
// returns one wrapping ErrCorrupt. Either kind of error says only that
// this frame is bad; whether it is a torn tail to cut off or corruption to
// refuse depends on what follows it (FindBatchStartFrame). DecodeFrame
// never panics.
func DecodeFrame(b []byte) (payload []byte, n int, err error) {
	payload, n, _, err = decodeFrame(b)
	return payload, n, err
}

// FindBatchStartFrame returns the offset of the first valid frame in b,
// tried at every byte offset, that starts a write batch (sealed by
// SealFrame, not SealContinuationFrame), and whether there is one.
//
// A reader of an append-only file of frames that meets a damaged frame
// calls it on the bytes after the damaged frame's start: if it finds one,
// that frame was written after an fsync that covered the damaged one, so
// the damage is corruption of acknowledged data and must be refused; if
// not, the damage is the torn tail of an unacknowledged write and may be
// cut off.
func FindBatchStartFrame(b []byte) (int, bool) {
	for i := 0; i+FrameHeaderSize <= len(b); i++ {
		if _, _, cont, err := decodeFrame(b[i:]); err == nil && !cont {
			return i, true
		}
	}
	return 0, false
}

func decodeFrame(b []byte) (payload []byte, n int, cont bool, err error) {
	if len(b) < FrameHeaderSize {
		return nil, 0, false, fmt.Errorf("%w: %d frame header bytes of %d", ErrTruncated, len(b), FrameHeaderSize)
	}
	raw := binary.LittleEndian.Uint32(b[4:8])
	length := raw &^ contFlag
	if length > MaxFrameSize {
		return nil, 0, false, fmt.Errorf("%w: frame length %d exceeds %d", ErrCorrupt, length, MaxFrameSize)
	}
	n = FrameHeaderSize + int(length)
	if len(b) < n {
		return nil, 0, false, fmt.Errorf("%w: %d frame bytes of %d", ErrTruncated, len(b), n)
	}
	want := binary.LittleEndian.Uint32(b[0:4])
	if got := crc32.Checksum(b[4:n], castagnoli); got != want {
		return nil, 0, false, fmt.Errorf("%w: frame checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	return b[FrameHeaderSize:n:n], n, raw&contFlag != 0, nil
}
