package txn

import (
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
)

// Wire format, shared by messages and log records (all integers unsigned
// varints unless noted):
//
//	version (1 byte, = 1) | kind (1 byte) | txn (16 bytes) | outcome (1 byte)
//	| coordinator (len, bytes) | count, then each participant (len, bytes)
//	| data (len, bytes) | reason (len, bytes) | duration (milliseconds)
//	[ | count, then each coordinator replica (len, bytes) ]
//
// The replica list is present only when not empty (a replicated
// coordinator's PREPARE, and the PREPARED record it leads to), so frames
// of the single-node protocol are byte for byte what they always were.
// One layout for every kind keeps the decoder small enough to reason about
// and to fuzz; the empty fields of a kind cost one byte each.
const wireVersion = 1

// Limits that bound what a decoder accepts, so a corrupt or hostile length
// cannot make it allocate without bound.
const (
	// MaxParticipants is the largest number of participants in one transaction.
	MaxParticipants = 1024
	// MaxReplicas is the largest coordinator replica group.
	MaxReplicas = 15
	maxNodeID   = 255
	maxReason   = 4096
)

// frame is the decoded form of a message or a log record.
type frame struct {
	kind         uint8
	txn          uuid.UUID
	outcome      Outcome
	coordinator  transport.NodeID
	participants []transport.NodeID
	data         []byte
	reason       string
	millis       uint64
	replicas     []transport.NodeID
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendFrame(dst []byte, f *frame) []byte {
	dst = append(dst, wireVersion, f.kind)
	dst = append(dst, f.txn[:]...)
	dst = append(dst, byte(f.outcome))
	dst = appendBytes(dst, []byte(f.coordinator))
	dst = binary.AppendUvarint(dst, uint64(len(f.participants)))
	for _, p := range f.participants {
		dst = appendBytes(dst, []byte(p))
	}
	dst = appendBytes(dst, f.data)
	dst = appendBytes(dst, []byte(f.reason))
	dst = binary.AppendUvarint(dst, f.millis)
	if len(f.replicas) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(f.replicas)))
		for _, p := range f.replicas {
			dst = appendBytes(dst, []byte(p))
		}
	}
	return dst
}

func frameSize(f *frame) int {
	n := 2 + 16 + 1 + binary.MaxVarintLen64*5 + len(f.coordinator) + len(f.data) + len(f.reason)
	for _, p := range f.participants {
		n += binary.MaxVarintLen64 + len(p)
	}
	for _, p := range f.replicas {
		n += binary.MaxVarintLen64 + len(p)
	}
	return n
}

// reader consumes a buffer and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a slice of at most limit bytes; it aliases the input.
func (r *reader) bytes(what string, limit int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail("%s length %d exceeds %d available", what, n, min(limit, len(r.b)))
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func decodeFrame(b []byte, maxKind uint8) (frame, error) {
	var f frame
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != wireVersion {
		r.fail("version %d; want %d", v, wireVersion)
	}
	f.kind = r.byte()
	if r.err == nil && (f.kind == 0 || f.kind > maxKind) {
		r.fail("kind %d", f.kind)
	}
	if r.err == nil {
		if len(r.b) < 16 {
			r.fail("truncated transaction ID")
		} else {
			copy(f.txn[:], r.b[:16])
			r.b = r.b[16:]
		}
	}
	f.outcome = Outcome(r.byte())
	if r.err == nil && f.outcome > Aborted {
		r.fail("outcome %d", f.outcome)
	}
	f.coordinator = transport.NodeID(r.bytes("coordinator", maxNodeID))
	n := r.uvarint()
	if r.err == nil && n > MaxParticipants {
		r.fail("%d participants; at most %d", n, MaxParticipants)
	}
	if r.err == nil && n > 0 {
		f.participants = make([]transport.NodeID, 0, min(n, uint64(len(r.b))))
		for i := uint64(0); i < n && r.err == nil; i++ {
			p := r.bytes("participant", maxNodeID)
			if r.err == nil && len(p) == 0 {
				r.fail("empty participant ID")
			}
			f.participants = append(f.participants, transport.NodeID(p))
		}
	}
	f.data = r.bytes("data", len(b))
	f.reason = string(r.bytes("reason", maxReason))
	f.millis = r.uvarint()
	if r.err == nil && len(r.b) != 0 {
		n := r.uvarint()
		if r.err == nil && (n == 0 || n > MaxReplicas) {
			r.fail("%d coordinator replicas; want 1 to %d", n, MaxReplicas)
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			p := r.bytes("replica", maxNodeID)
			if r.err == nil && len(p) == 0 {
				r.fail("empty replica ID")
			}
			f.replicas = append(f.replicas, transport.NodeID(p))
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return frame{}, r.err
	}
	if len(f.data) == 0 {
		f.data = nil
	}
	return f, nil
}
