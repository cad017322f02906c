package idempotency

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/distkit/distkit/internal/wal"
)

// The FileStore log format.
//
// The file starts with the 8-byte magic logMagic. Then come frames in the
// format of internal/wal (wal.AppendFrame: CRC32C of the length and body,
// u32 body length, body; at most wal.MaxFrameSize bytes of body).
//
// A body starts with a type byte:
//
//	framePut (a whole Record, stored unconditionally: written by Begin and by
//	compaction) and frameComplete (a whole Record, applied only if the key's
//	current record is in progress with the same Token):
//	  uvarint key length, key
//	  u8 status, u8 flags (1 = Failed, 2 = Omitted)
//	  u64 token, i64 created (Unix ns), i64 expires (Unix ns)
//	  uvarint fingerprint length, fingerprint
//	  uvarint result length, result
//	frameAbort (remove an in-progress record):
//	  uvarint key length, key, u64 token
//
// Every frame but the first of a write batch (the frames one flush writes
// and fsyncs together) is sealed with wal.SealContinuationFrame; frames
// written by compaction all start batches.
//
// Replaying the frames in order rebuilds the records. A crash can leave a
// torn last batch; wal.DecodeFrame finds its first bad frame cut short or
// its checksum wrong, and the store truncates the log there, provided no
// valid frame that starts a later batch follows it
// (wal.FindBatchStartFrame). If one does, the bad frame had been fsynced
// and has gone bad since: the store refuses to open (ErrCorrupt) rather
// than drop the acknowledged records after it.
const (
	// logMagic names the format version: DKIDEMP1 had its own frame
	// header, so an old log is refused rather than read as a torn tail.
	logMagic = "DKIDEMP2"

	framePut      byte = 1
	frameAbort    byte = 2
	frameComplete byte = 3

	flagFailed  byte = 1
	flagOmitted byte = 2
)

// errUnparsable marks a frame that passes its checksum but does not parse:
// no crash makes one, so it is never cut off as a torn tail.
var errUnparsable = errors.New("idempotency: frame passes its checksum but does not parse")

// logEntry is one decoded frame.
type logEntry struct {
	kind byte   // framePut, frameComplete or frameAbort
	rec  Record // for frameAbort only Key and Token are set
}

// sealFrame seals the frame at dst[start:], as a continuation of its write
// batch if cont.
func sealFrame(dst []byte, start int, cont bool) []byte {
	if cont {
		return wal.SealContinuationFrame(dst, start)
	}
	return wal.SealFrame(dst, start)
}

// appendRecordFrame appends a framePut or frameComplete frame carrying rec,
// starting a write batch.
func appendRecordFrame(dst []byte, kind byte, rec *Record) []byte {
	return appendRecordFrameCont(dst, kind, rec, false)
}

// appendRecordFrameCont is appendRecordFrame where cont marks a frame that
// is not the first of its write batch.
func appendRecordFrameCont(dst []byte, kind byte, rec *Record, cont bool) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, wal.FrameHeaderSize)...)
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(rec.Key)))
	dst = append(dst, rec.Key...)
	var flags byte
	if rec.Failed {
		flags |= flagFailed
	}
	if rec.Omitted {
		flags |= flagOmitted
	}
	dst = append(dst, byte(rec.Status), flags)
	dst = binary.LittleEndian.AppendUint64(dst, rec.Token)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(rec.Created.UnixNano()))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(rec.Expires.UnixNano()))
	dst = binary.AppendUvarint(dst, uint64(len(rec.Fingerprint)))
	dst = append(dst, rec.Fingerprint...)
	dst = binary.AppendUvarint(dst, uint64(len(rec.Result)))
	dst = append(dst, rec.Result...)
	return sealFrame(dst, start, cont)
}

// recordFrameBound is an upper bound on the body size of rec's frame.
func recordFrameBound(rec *Record) int {
	const fixed = 1 + 2 + 3*8 + 3*binary.MaxVarintLen64 // type, status, flags, u64s, lengths
	return fixed + len(rec.Key) + len(rec.Fingerprint) + len(rec.Result)
}

// appendAbortFrame appends the frame removing key's record held by token,
// starting a write batch.
func appendAbortFrame(dst []byte, key string, token uint64) []byte {
	return appendAbortFrameCont(dst, key, token, false)
}

// appendAbortFrameCont is appendAbortFrame with cont as for
// appendRecordFrameCont.
func appendAbortFrameCont(dst []byte, key string, token uint64, cont bool) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, wal.FrameHeaderSize)...)
	dst = append(dst, frameAbort)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.LittleEndian.AppendUint64(dst, token)
	return sealFrame(dst, start, cont)
}

// decodeFrame decodes the frame at the start of buf. It returns the entry
// and the frame's size. A frame that is incomplete, fails its checksum or
// does not parse gives an error wrapping ErrCorrupt. The entry's strings and
// Result are copies: buf may be reused.
func decodeFrame(buf []byte) (logEntry, int, error) {
	body, n, err := wal.DecodeFrame(buf)
	if err != nil {
		// Wraps wal.ErrTruncated (a torn tail) or wal.ErrCorrupt too.
		return logEntry{}, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	e, err := parseBody(body)
	if err != nil {
		return logEntry{}, 0, fmt.Errorf("%w: %w", errUnparsable, err)
	}
	return e, n, nil
}

// bodyReader consumes a frame body; the first failure sticks.
type bodyReader struct {
	b   []byte
	err error
}

func (r *bodyReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *bodyReader) byte(what string) byte {
	if len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *bodyReader) u64(what string) uint64 {
	if len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *bodyReader) bytes(what string, max uint64) []byte {
	n, k := binary.Uvarint(r.b)
	// Writers emit minimal varints; anything else is not ours.
	if k <= 0 || k != uvarintLen(n) || n > max || n > uint64(len(r.b)-k) {
		r.fail(what)
		return nil
	}
	v := r.b[k : k+int(n)]
	r.b = r.b[k+int(n):]
	return v
}

func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

func parseBody(body []byte) (logEntry, error) {
	r := bodyReader{b: body}
	var e logEntry
	e.kind = r.byte("frame type")
	switch e.kind {
	case framePut, frameComplete:
		e.rec.Key = string(r.bytes("key", MaxKeyLen))
		e.rec.Status = Status(r.byte("status"))
		flags := r.byte("flags")
		e.rec.Token = r.u64("token")
		e.rec.Created = time.Unix(0, int64(r.u64("created")))
		e.rec.Expires = time.Unix(0, int64(r.u64("expires")))
		e.rec.Fingerprint = string(r.bytes("fingerprint", wal.MaxFrameSize))
		if res := r.bytes("result", wal.MaxFrameSize); len(res) > 0 {
			e.rec.Result = append([]byte(nil), res...)
		}
		if r.err == nil {
			if e.rec.Status != StatusInProgress && e.rec.Status != StatusCompleted ||
				e.kind == frameComplete && e.rec.Status != StatusCompleted {
				r.fail("status")
			}
			if flags&^(flagFailed|flagOmitted) != 0 {
				r.fail("flags")
			}
		}
		e.rec.Failed = flags&flagFailed != 0
		e.rec.Omitted = flags&flagOmitted != 0
	case frameAbort:
		e.rec.Key = string(r.bytes("key", MaxKeyLen))
		e.rec.Token = r.u64("token")
	default:
		r.fail("frame type")
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err == nil && ValidateKey(e.rec.Key) != nil {
		r.fail("key") // writers only log valid keys
	}
	if r.err != nil {
		return logEntry{}, r.err
	}
	return e, nil
}
